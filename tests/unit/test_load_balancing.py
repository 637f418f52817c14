"""Per-replica accounting (recorder -> requests.csv -> metrics), nginx's access log
with upstream tries, weighted upstreams, and the load balancing lab's arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import (
    Request,
    VariantResult,
    read_requests,
    replica_counts,
    summarize,
)
from labs.engine.model.spec import DeriveContext, NginxSpec, Upstream
from labs.engine.model.verdicts import judge_check
from labs.engine.topology import nginx
from labs.load_balancing import lab as lb
from labs.load_balancing.measure import (
    RELOAD_SETTLE_S,
    Phase,
    dead_replica_numbers,
    first_answer_after,
    key_numbers,
    key_replicas,
    moved_keys,
    phase_numbers,
    phases,
    replica_names,
    replica_of_addr,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGIN = 1000.0


def req(t: float, replica: str = "api-1", status: int = 200, ms: float = 50.0) -> Request:
    return Request(ORIGIN + t, "/work", status, ms, replica)


# --- the load harness counts replicas ---------------------------------------------------------


def test_recorder_writes_the_x_replica_of_each_answer(tmp_path: Path):
    """Run in a subprocess: importing locust monkey-patches the interpreter."""
    events = tmp_path / "requests.csv"
    script = """
import loadtests.recorder as r

class Answer:
    status_code = 200
    headers = {"X-Replica": "api-3"}

class NoHeaders:
    status_code = 502
    headers = None

r._record("/work", 12.5, response=Answer(), start_time=1.0)
r._record("/work", 3.0, response=NoHeaders(), start_time=2.0)
r._record("/work", 1.0, response=None, exception=OSError("refused"), start_time=3.0)
r._write()
"""
    env = {"LAB_EVENTS_FILE": str(events), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, check=True, timeout=60)
    assert events.read_text().splitlines()[0] == "start_s,name,status,response_ms,replica"
    assert read_requests(events) == [
        Request(1.0, "/work", 200, 12.5, "api-3"),
        Request(2.0, "/work", 502, 3.0, ""),
        Request(3.0, "/work", 0, 1.0, ""),
    ]


def test_a_file_without_the_replica_column_still_reads(tmp_path: Path):
    path = tmp_path / "requests.csv"
    path.write_text("start_s,name,status,response_ms\n1.5,/work,200,3.25\n")
    assert read_requests(path) == [Request(1.5, "/work", 200, 3.25, "")]


def test_summarize_counts_answers_per_replica():
    requests = [req(0, "api-2"), req(0.1, "api-1"), req(0.2, "api-2"), req(0.3, "", 502)]
    assert replica_counts(requests) == {"api-1": 1, "api-2": 2}
    assert summarize("v", requests).replicas == {"api-1": 1, "api-2": 2}
    assert summarize("v", [Request(ORIGIN, "/work", 200, 1.0)]).replicas == {}


# --- nginx: weights and the access log --------------------------------------------------------


def render(tmp_path: Path, spec: NginxSpec, servers: list[str]) -> str:
    layout = nginx.NginxLayout(tmp_path / "prefix")
    return nginx.render_config(
        spec, lab="t", variant="v", listen="127.0.0.1:9000", servers=servers, layout=layout
    )


def test_weights_are_rendered_per_server_and_absent_by_default(tmp_path: Path):
    servers = ["127.0.0.1:9001", "127.0.0.1:9002"]
    weighted = render(tmp_path, NginxSpec(upstream=Upstream(weights=(20, 1))), servers)
    assert "server 127.0.0.1:9001 weight=20 max_fails=0" in weighted
    assert "server 127.0.0.1:9002 weight=1 max_fails=0" in weighted
    assert "weight=" not in render(tmp_path, NginxSpec(), servers)


def test_a_variant_gives_one_weight_per_replica():
    with pytest.raises(ValueError, match=r"one weight per api replica \(4\)"):
        replace(lb.ROUND_ROBIN, nginx=NginxSpec(upstream=Upstream(weights=(1, 2, 3))))


def test_fewer_servers_than_weights_take_the_first_weights(tmp_path: Path):
    """nginx -t of every variant renders one server."""
    text = render(tmp_path, lb.WEIGHTED.nginx, ["127.0.0.1:9001"])
    assert "server 127.0.0.1:9001 weight=20 max_fails=1" in text


def test_access_log_keeps_every_upstream_try_and_the_answering_replica():
    line = {
        "t": 1010.5, "status": 200, "uri": "/work?key=key-0007",
        "upstream_status": "502, 200", "upstream_addr": "127.0.0.1:9004, 127.0.0.1:9001",
        "request_time": 0.5, "upstream_replica": "api-1",
    }  # fmt: skip
    entries = nginx.access_entries(json.dumps(line) + "\nnot json\n")
    assert len(entries) == 1
    entry = entries[0]
    assert entry.start_s == pytest.approx(1010.0) and entry.replica == "api-1"
    assert [(t.addr, t.status) for t in entry.tries] == [
        ("127.0.0.1:9004", "502"),
        ("127.0.0.1:9001", "200"),
    ]
    assert [t.succeeded for t in entry.tries] == [False, True]
    assert not nginx.UpstreamTry("127.0.0.1:9001", "-").succeeded


def test_the_lab_renders_and_passes_nginx_t(tmp_path: Path):
    for variant in lb.VARIANTS:
        layout = nginx.NginxLayout(tmp_path / variant.name)
        servers = [f"127.0.0.1:{9001 + i}" for i in range(lb.REPLICAS)]
        text = nginx.render_config(
            variant.nginx, lab="load-balancing", variant=variant.name,
            listen="127.0.0.1:9000", servers=servers, layout=layout,
        )  # fmt: skip
        nginx.write_config(text, layout)
        nginx.test_config(layout)
        max_fails = 0 if variant is lb.NO_HEALTH_CHECK else 1
        assert f"max_fails={max_fails} fail_timeout=2s" in text, variant.name


# --- the lab's arithmetic ---------------------------------------------------------------------

EVENTS = [
    {"t_s": 4.0, "action": "settings", "replica": 3},
    {"t_s": 10.0, "action": "kill", "replica": 3},
    {"t_s": 16.0, "action": "start", "replica": 3},
]


def test_phases_are_cut_at_the_fault_events():
    assert phases(EVENTS, 20.0) == [
        Phase("healthy", 0.0, 4.0),
        Phase("slow", 4.0, 10.0),
        Phase("dead", 10.0, 16.0),
        Phase("back", 16.0, 20.0),
    ]
    assert phases([], 5.0) == [Phase("healthy", 0.0, 5.0)]
    scale_in = [*EVENTS, {"t_s": 28.0, "action": "remove", "replica": 3}]
    assert phases(scale_in, 38.0)[-2:] == [Phase("back", 16.0, 28.0), Phase("removed", 28.0, 38.0)]


def test_phase_numbers_share_latency_and_errors():
    requests = [req(0, "api-1", ms=10), req(0, "api-1", ms=20), req(0, "api-2", ms=30)]
    requests += [req(0, "", 502, ms=1), req(0, "", 504, ms=2000)]
    numbers = phase_numbers(requests, ["api-1", "api-2", "api-3"])
    assert numbers["share"] == {"api-1": 0.6667, "api-2": 0.3333, "api-3": 0.0}
    assert numbers["requests"] == 5 and numbers["errors"] == 2
    assert (numbers["502"], numbers["504"]) == (1, 1)
    assert numbers["mean_ms"] == pytest.approx((10 + 20 + 30 + 1 + 2000) / 5, abs=0.1)


def test_replica_names_list_a_replica_that_never_answered():
    assert replica_names([req(0, "api-2"), req(0, "api-10")], 4) == [
        "api-1", "api-2", "api-3", "api-4", "api-10",
    ]  # fmt: skip


def entry(t: float, tries: list[tuple[str, str]], replica: str, key: str = "") -> nginx.AccessEntry:
    return nginx.AccessEntry(
        start_s=ORIGIN + t,
        status=int(tries[-1][1]) if replica else 502,
        uri=f"/work?key={key}" if key else "/work",
        tries=tuple(nginx.UpstreamTry(a, s) for a, s in tries),
        replica=replica,
    )


def test_addresses_are_matched_to_replicas_by_their_answers():
    entries = [entry(0, [("a:1", "200")], "api-1"), entry(0, [("a:4", "502"), ("a:1", "200")],
               "api-1"), entry(0, [("a:4", "200")], "api-4")]  # fmt: skip
    assert replica_of_addr(entries) == {"a:1": "api-1", "a:4": "api-4"}


def test_dead_replica_in_flight_tries_errors_and_return():
    died = Phase("dead", 10.0, 16.0)
    entries = [entry(1, [("a:4", "200")], "api-4"), entry(1, [("a:1", "200")], "api-1")]
    entries += [entry(9.8, [("a:4", "502"), ("a:1", "200")], "api-1")]  # in flight at the kill
    entries += [entry(t, [("a:4", "502"), ("a:2", "200")], "api-2") for t in (10.2, 12.3, 14.4)]
    entries += [entry(t, [("a:1", "200")], "api-1") for t in (11, 13, 15)]
    requests = [req(11, "api-1"), req(12.5, "", 502), req(17.0, "api-4"), req(16.5, "api-1")]
    requests += [req(9.9, "", 502, ms=200), req(9.0, "", 502, ms=100)]  # at the death, before
    numbers = dead_replica_numbers(
        entries, ORIGIN, "api-4", died, 2.0, requests, ORIGIN + 20, ready_after_s=0.4
    )
    assert numbers["dead_in_flight"] == 1
    assert numbers["dead_tries"] == 3 and numbers["dead_try_times_s"] == [0.2, 2.3, 4.4]
    assert numbers["dead_tries_allowed"] == 1 + 4  # 7 s down / 2 s fail_timeout, rounded up
    assert numbers["dead_errors"] == 2 and numbers["last_error_after_s"] == 2.55
    assert numbers["back_after_s"] == 1.0
    assert (numbers["ready_after_s"], numbers["rejoined_after_s"]) == (0.4, 0.6)


def test_a_replica_that_never_answers_again_has_no_back_time():
    died = Phase("dead", 10.0, 16.0)
    requests = [req(17.0, "api-1"), req(15.0, "api-4")]  # api-4 answered only before
    numbers = dead_replica_numbers([], ORIGIN, "api-4", died, 2.0, requests, ORIGIN + 20, 1.0)
    assert numbers["back_after_s"] is None and numbers["rejoined_after_s"] is None
    assert numbers["dead_tries_allowed"] == 1 + 5  # down until the end: 10 s / 2 s
    assert first_answer_after(requests, "api-4", ORIGIN + 16) == float("inf")
    assert first_answer_after(requests, "api-4", ORIGIN) == ORIGIN + 15.0


NAMES = {"a:1": "api-1", "a:2": "api-2", "a:3": "api-3", "a:4": "api-4"}


def answered(t: float, homes: dict[str, str]) -> list[nginx.AccessEntry]:
    return [entry(t, [(addr, "200")], NAMES[addr], key) for key, addr in homes.items()]


def test_moved_keys_votes_by_majority_and_names_whose_keys_moved():
    before = key_replicas(answered(1, {"k1": "a:1", "k2": "a:4"}), [(ORIGIN, ORIGIN + 5)],
                          retried=False)  # fmt: skip
    after = key_replicas(
        answered(6, {"k1": "a:1", "k2": "a:1"}) + answered(6.1, {"k1": "a:2", "k3": "a:3"})
        + answered(6.2, {"k1": "a:1"}),
        [(ORIGIN + 5, ORIGIN + 10)],
        retried=False,
    )  # fmt: skip
    assert after["k1"] == {"api-1": 2, "api-2": 1}
    assert moved_keys(before, after, "api-4") == {
        "compared": 2, "moved": 1, "moved_pct": 50.0, "of_it": 1, "moved_not_of_it": 0,
    }  # fmt: skip
    assert moved_keys({}, after, "api-4")["moved_pct"] == 0.0


def test_key_numbers_when_the_replica_died_and_when_it_was_removed():
    plan = [Phase("healthy", 0, 4), Phase("slow", 4, 10), Phase("dead", 10, 16),
            Phase("back", 16, 28), Phase("removed", 28, 38)]  # fmt: skip
    homes = {"k1": "a:1", "k2": "a:2", "k3": "a:4", "k4": "a:4"}
    entries = answered(1, homes)
    entries += [entry(9.9, [("a:4", "502"), ("a:1", "200")], "api-1", "k3")]  # in flight
    # dead: only its keys move; a retried request says where a key went
    entries += answered(12, {"k1": "a:1", "k2": "a:2", "k4": "a:2"})
    entries += [entry(12.1, [("a:4", "502"), ("a:1", "200")], "api-1", "k3")]
    # back: k5 first seen only after api-4 answered again (at 19 s), on api-4
    entries += answered(17, {"k5": "a:1"}) + answered(20, {"k5": "a:4"})
    # removed: the old worker still answers by the old upstream within the settle time
    entries += answered(28 + RELOAD_SETTLE_S / 2, {"k1": "a:4", "k2": "a:4"})
    entries += answered(30, {"k1": "a:1", "k2": "a:3", "k3": "a:3", "k4": "a:1", "k5": "a:2"})
    numbers = key_numbers(entries, ORIGIN, plan, "api-4", back_s=ORIGIN + 19)
    assert numbers["keys_up"] == 5 and numbers["keys_single_replica_pct"] == 100.0
    assert (numbers["died_keys_compared"], numbers["died_keys_moved"]) == (4, 2)
    assert numbers["died_keys_of_it"] == 2 and numbers["died_keys_moved_not_of_it"] == 0
    assert (numbers["removed_keys_compared"], numbers["removed_keys_moved"]) == (5, 4)
    assert numbers["removed_keys_of_it"] == 3 and numbers["removed_keys_moved_not_of_it"] == 1
    assert numbers["removed_keys_moved_pct"] == 80.0
    no_scale_in = key_numbers(entries, ORIGIN, plan[:4], "api-4", back_s=ORIGIN + 19)
    assert "removed_keys_moved_pct" not in no_scale_in and no_scale_in["keys_up"] == 5


# --- the checks, judged on synthetic results --------------------------------------------------


def result(name: str, **extra: object) -> VariantResult:
    return VariantResult(name, 38, 3000, 0, {"200": 3000}, 0, 0, 0, 0, 0, 0, extra=extra)


FAILED_OVER = {"dead_replica": "api-4", "dead_errors": 0, "last_error_after_s": None,
               "dead_in_flight": 3, "dead_tries": 3, "dead_tries_allowed": 7,
               "back_after_s": 5.3, "ready_after_s": 4.7, "rejoined_after_s": 0.6}  # fmt: skip
NO_HEALTH_CHECK = {**FAILED_OVER, "dead_tries": 338, "back_after_s": 4.7, "rejoined_after_s": 0.0}


def check(name: str):  # noqa: ANN201
    return next(c for c in lb.LAB.checks if c.name == name)


def test_every_failover_check_is_proven_against_the_variant_without_health_checks():
    for variant in lb.BALANCERS:
        name = f"{variant.name.replace('-', '_')}_fails_over_a_dead_replica"
        assert lb.LAB.twin_of(check(name), variant.name) == "no-health-check"
        results = {variant.name: result(variant.name, **FAILED_OVER),
                   "no-health-check": result("no-health-check", **NO_HEALTH_CHECK)}  # fmt: skip
        judged = judge_check(lb.LAB, check(name), results)
        assert judged.passed and judged.proof == "proven", judged.proof_detail
        assert "338 new requests" in judged.proof_detail


@pytest.mark.parametrize(
    "numbers, why",
    [
        ({"back_after_s": None, "rejoined_after_s": None}, "never, before the run ended"),
        ({"back_after_s": 9.5, "rejoined_after_s": 4.8}, "4.8 s after it was ready"),
        ({"rejoined_after_s": None, "ready_after_s": None}, "ready after None s"),
        ({"dead_tries": 8}, "sent it 8 new requests"),
        ({"dead_errors": 4, "last_error_after_s": 4.5}, "the last 4.5 s after"),
    ],
)  # fmt: skip
def test_a_replica_not_ejected_or_not_back_fails_over_check(numbers: dict, why: str):
    passed, detail = check("round_robin_fails_over_a_dead_replica").evaluate(
        {"round-robin": result("round-robin", **{**FAILED_OVER, **numbers})}
    )
    assert not passed and why in detail


def moved(pct: float, compared: int = 500) -> dict[str, object]:
    return {"slow_replica": "api-4", "removed_keys_compared": compared,
            "removed_keys_moved": round(pct * compared / 100), "removed_keys_moved_pct": pct,
            "removed_keys_of_it": 120, "removed_keys_moved_not_of_it": 0}  # fmt: skip


def test_the_key_check_needs_the_contrast_measured_on_enough_keys():
    keys = check("hash_consistent_moves_only_the_removed_replicas_keys")
    assert keys.variants == ("hash", "hash-plain") and not keys.not_applicable
    results = {"hash": result("hash", **moved(22.8)), "hash-plain": result("p", **moved(76.2))}
    judged = judge_check(lb.LAB, keys, results)
    assert judged.passed and judged.proof == "proven", judged.detail
    assert judged.proof_detail.startswith("[hash <- hash-plain]")
    for hash_pct, plain_pct, compared in ((36.0, 76.2, 500), (22.8, 59.0, 500), (22.8, 76.2, 399)):
        results = {"hash": result("hash", **moved(hash_pct, compared)),
                   "hash-plain": result("p", **moved(plain_pct))}  # fmt: skip
        assert not keys.evaluate(results)[0], (hash_pct, plain_pct, compared)


# --- the experiment ---------------------------------------------------------------------------


def test_the_twins_differ_from_their_variants_only_in_the_fix():
    assert replace(lb.NO_HEALTH_CHECK, name="round-robin", summary=lb.ROUND_ROBIN.summary,
                   twin=lb.ROUND_ROBIN.twin) == replace(
        lb.ROUND_ROBIN, nginx=replace(lb.NGINX, upstream=replace(lb.UPSTREAM, max_fails=0))
    )  # fmt: skip
    assert lb.HASH.nginx.upstream.balance == "hash $arg_key consistent"
    assert lb.HASH_PLAIN.nginx.upstream.balance == "hash $arg_key"
    assert replace(lb.HASH_PLAIN, name="hash", summary=lb.HASH.summary, twin="hash-plain",
                   nginx=lb.HASH.nginx) == lb.HASH  # fmt: skip


def test_the_hash_variants_scale_in_after_the_others_end():
    for variant in (lb.HASH, lb.HASH_PLAIN):
        assert variant.faults[-1] == lb.SCALE_IN and variant.faults[:-1] == lb.FAULTS
        assert variant.load.duration_s == lb.SCALE_IN.at_s + lb.REMOVED_PHASE_S
    assert lb.SCALE_IN.at_s == lb.DURATION_S and lb.SCALE_IN.action == "remove"
    assert {v.load.duration_s for v in lb.VARIANTS if v not in (lb.HASH, lb.HASH_PLAIN)} == {
        lb.DURATION_S
    }


def test_the_back_phase_outlasts_start_up_and_rejoining():
    """The restarted replica has time to answer again in every run (issue 16: it did not
    when the back phase was 4 s and nginx's next try came after the run)."""
    back = lb.DURATION_S - lb.START_AT_S
    assert back >= lb.STARTUP_BUDGET_S + lb.REJOINS_WITHIN_S
    assert lb.REJOINS_WITHIN_S >= lb.FAIL_TIMEOUT_S + 1  # nginx's clock: whole seconds


def test_weighted_variant_down_weights_only_the_slow_replica():
    assert lb.WEIGHTED.nginx.upstream.weights == (20, 20, 20, 1)
    assert {v.nginx.upstream.weights for v in lb.VARIANTS if v is not lb.WEIGHTED} == {()}


def test_derive_on_a_synthetic_hash_run(tmp_path: Path):
    """The whole derive hook: phases from the engine's events (the start's `took_s` is
    the start-up), the replica's return, and the keys before and after the scale-in."""
    addr = {f"api-{n}": f"127.0.0.1:900{n}" for n in range(1, 5)}
    home = {f"key-{i}": f"api-{i % 4 + 1}" for i in range(8)}
    log: list[dict[str, object]] = []
    requests: list[Request] = []

    def answer(t: float, key: str, replica: str, failed_first: str = "") -> None:
        tried = [failed_first, replica] if failed_first else [replica]
        log.append({"t": ORIGIN + t + 0.05, "status": 200, "uri": f"/work?key={key}",
                    "upstream_status": ", ".join(["502"] * (len(tried) - 1) + ["200"]),
                    "upstream_addr": ", ".join(addr[r] for r in tried), "request_time": 0.05,
                    "upstream_replica": replica})  # fmt: skip
        requests.append(req(t, replica))

    for t in (1, 2, 3, 5):  # healthy and slow: every key at home
        for key, replica in home.items():
            answer(t, key, replica)
    answer(10.1, "key-3", "api-1", failed_first="api-4")  # dead: its keys elsewhere
    for key, replica in home.items():
        answer(12, key, "api-1" if replica == "api-4" else replica)
    answer(19.0, "key-3", "api-4")  # back: its first answer (a probe) ...
    answer(19.02, "key-7", "api-2")  # ... while it is in flight, nginx still skips it
    for key, replica in home.items():
        answer(21, key, replica)
    answer(30.3, "key-3", "api-4")  # removed: the old worker, within the settle time
    for key, replica in home.items():
        answer(33, key, {"api-4": "api-1"}.get(replica, replica))
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "access.log").write_text("".join(json.dumps(x) + "\n" for x in log))
    events = [
        {**EVENTS[0], "service": "api"}, {**EVENTS[1], "service": "api"},
        {**EVENTS[2], "service": "api", "took_s": 2.0},
        {"t_s": 30.0, "action": "remove", "service": "api", "replica": 3},
    ]  # fmt: skip
    result = VariantResult("hash", 40, len(requests), 0, {}, 0, 0, 0, 0, 0, 0,
                           origin_s=ORIGIN, events=events)  # fmt: skip
    extra = lb.derive(DeriveContext(lb.HASH, result, requests, tmp_path))
    assert [p["name"] for p in extra["phases"]] == ["healthy", "slow", "dead", "back", "removed"]
    assert extra["slow_replica"] == extra["dead_replica"] == "api-4"
    assert (extra["back_after_s"], extra["ready_after_s"], extra["rejoined_after_s"]) == (
        3.0, 2.0, 1.0,
    )  # fmt: skip
    assert extra["dead_tries"] == 1 and extra["dead_errors"] == 0
    assert extra["keys_up"] == 8 and extra["keys_single_replica_pct"] == 100.0
    assert (extra["died_keys_moved"], extra["died_keys_moved_not_of_it"]) == (2, 0)
    assert (extra["removed_keys_compared"], extra["removed_keys_moved"]) == (8, 2)
    assert extra["removed_keys_moved_pct"] == 25.0 and extra["removed_keys_of_it"] == 2
