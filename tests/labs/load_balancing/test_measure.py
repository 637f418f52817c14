"""load-balancing's measurements (labs/load_balancing/measure.py, keys.py) on synthetic
runs: per-replica accounting (recorder -> requests.csv -> metrics), nginx's access log
with upstream tries, phases, the dead replica, where keys went, and `derive`'s typed
numbers whose JSON view is results.json's `extra` (fast, no processes but a recorder)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import (
    Request,
    VariantResult,
    read_requests,
    replica_counts,
    summarize,
)
from labs.engine.analysis.windows import Window, phases
from labs.engine.model.spec import DeriveContext
from labs.engine.topology import nginx
from labs.load_balancing.keys import MovedKeys, key_numbers, key_replicas, moved_keys
from labs.load_balancing.measure import (
    LoadBalancingNumbers,
    dead_replica_numbers,
    derive,
    first_answer_after,
    phase_numbers,
    replica_names,
    replica_of_addr,
)
from labs.load_balancing.scenario import (
    FIRST_PHASE,
    HASH,
    PHASE_OF_ACTION,
    RELOAD_SETTLE_S,
    ROUND_ROBIN,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
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


# --- phases, shares, the dead replica ---------------------------------------------------------

EVENTS = [
    {"t_s": 4.0, "what": "fault", "action": "settings", "service": "api", "replica": 3,
     "settings": {"latency_ms": 1000}},
    {"t_s": 10.0, "what": "fault", "action": "kill", "service": "api", "replica": 3},
    {"t_s": 16.0, "what": "fault", "action": "start", "service": "api", "replica": 3,
     "took_s": 2.0},
]  # fmt: skip


def run_of(duration_s: float, events: list[dict[str, object]]) -> VariantResult:
    return VariantResult("v", duration_s, 0, 0, {}, 0, 0, 0, 0, 0, 0, origin_s=ORIGIN,
                         events=events)  # fmt: skip


def test_phases_are_cut_at_the_fault_events():
    def cut(duration_s: float, events: list[dict[str, object]]) -> tuple[Window, ...]:
        return phases(run_of(duration_s, events), PHASE_OF_ACTION, FIRST_PHASE)

    assert cut(20.0, EVENTS) == (
        Window(0.0, 4.0, "healthy"),
        Window(4.0, 10.0, "slow"),
        Window(10.0, 16.0, "dead"),
        Window(16.0, 20.0, "back"),
    )
    assert cut(5.0, []) == (Window(0.0, 5.0, "healthy"),)
    scale_in = [*EVENTS, {"t_s": 28.0, "what": "fault", "action": "remove", "replica": 3}]
    assert cut(38.0, scale_in)[-2:] == (Window(16.0, 28.0, "back"), Window(28.0, 38.0, "removed"))


def test_phase_numbers_share_latency_and_errors():
    requests = [req(0, "api-1", ms=10), req(0, "api-1", ms=20), req(0, "api-2", ms=30)]
    requests += [req(0, "", 502, ms=1), req(0, "", 504, ms=2000)]
    numbers = phase_numbers(requests, ["api-1", "api-2", "api-3"])
    assert numbers.share == {"api-1": 0.6667, "api-2": 0.3333, "api-3": 0.0}
    assert numbers.requests == 5 and numbers.errors == 2
    assert (numbers.count_502, numbers.count_504) == (1, 1)
    assert numbers.mean_ms == pytest.approx((10 + 20 + 30 + 1 + 2000) / 5, abs=0.1)


def test_replica_names_list_a_replica_that_never_answered():
    assert replica_names([req(0, "api-2"), req(0, "api-10")], 4) == (
        "api-1", "api-2", "api-3", "api-4", "api-10",
    )  # fmt: skip


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
    died = Window(10.0, 16.0, "dead")
    entries = [entry(1, [("a:4", "200")], "api-4"), entry(1, [("a:1", "200")], "api-1")]
    entries += [entry(9.8, [("a:4", "502"), ("a:1", "200")], "api-1")]  # in flight at the kill
    entries += [entry(t, [("a:4", "502"), ("a:2", "200")], "api-2") for t in (10.2, 12.3, 14.4)]
    entries += [entry(t, [("a:1", "200")], "api-1") for t in (11, 13, 15)]
    requests = [req(11, "api-1"), req(12.5, "", 502), req(17.0, "api-4"), req(16.5, "api-1")]
    requests += [req(9.9, "", 502, ms=200), req(9.0, "", 502, ms=100)]  # at the death, before
    numbers = dead_replica_numbers(
        entries, ORIGIN, "api-4", died, 2.0, requests, ORIGIN + 20, ready_after_s=0.4
    )
    assert numbers.dead_in_flight == 1
    assert numbers.dead_tries == 3 and numbers.dead_try_times_s == (0.2, 2.3, 4.4)
    assert numbers.dead_tries_allowed == 1 + 4  # 7 s down / 2 s fail_timeout, rounded up
    assert numbers.dead_errors == 2 and numbers.last_error_after_s == 2.55
    assert numbers.back_after_s == 1.0 and numbers.dead_phase_s == 6.0
    assert (numbers.ready_after_s, numbers.rejoined_after_s) == (0.4, 0.6)


def test_a_replica_that_never_answers_again_has_no_back_time():
    died = Window(10.0, 16.0, "dead")
    requests = [req(17.0, "api-1"), req(15.0, "api-4")]  # api-4 answered only before
    numbers = dead_replica_numbers([], ORIGIN, "api-4", died, 2.0, requests, ORIGIN + 20, 1.0)
    assert numbers.back_after_s is None and numbers.rejoined_after_s is None
    assert numbers.dead_tries_allowed == 1 + 5  # down until the end: 10 s / 2 s
    assert first_answer_after(requests, "api-4", ORIGIN + 16) == float("inf")
    assert first_answer_after(requests, "api-4", ORIGIN) == ORIGIN + 15.0


# --- where keys went --------------------------------------------------------------------------

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
    assert moved_keys(before, after, "api-4") == MovedKeys(
        compared=2, moved=1, moved_pct=50.0, of_it=1, moved_not_of_it=0
    )
    assert moved_keys({}, after, "api-4").moved_pct == 0.0


def test_key_numbers_when_the_replica_died_and_when_it_was_removed():
    plan = (Window(0, 4, "healthy"), Window(4, 10, "slow"), Window(10, 16, "dead"),
            Window(16, 28, "back"), Window(28, 38, "removed"))  # fmt: skip
    homes = {"k1": "a:1", "k2": "a:2", "k3": "a:4", "k4": "a:4"}
    entries = answered(1, homes)
    entries += [entry(9.9, [("a:4", "502"), ("a:1", "200")], "api-1", "k3")]  # in flight
    # dead: only its keys move; a retried request says where a key went
    entries += answered(12, {"k1": "a:1", "k2": "a:2", "k4": "a:2"})
    entries += [entry(12.1, [("a:4", "502"), ("a:1", "200")], "api-1", "k3")]
    # back: k5 first seen only after api-4 answered again (at 19 s), on api-4
    entries += answered(17, {"k5": "a:1"}) + answered(20, {"k5": "a:4"})
    # removed: the reload came 2 s in (the remove action tested the config first); the
    # old worker answers by the old upstream until then, and within the settle time after
    old_upstream = {"k1": "a:1", "k2": "a:2", "k3": "a:4", "k4": "a:4"}
    entries += answered(29, old_upstream) + answered(30 + RELOAD_SETTLE_S / 2, old_upstream)
    entries += answered(32, {"k1": "a:1", "k2": "a:3", "k3": "a:3", "k4": "a:1", "k5": "a:2"})
    numbers = key_numbers(entries, ORIGIN, plan, "api-4", back_s=ORIGIN + 19, reload_after_s=2)
    assert numbers.keys_up == 5 and numbers.keys_single_replica_pct == 100.0
    assert numbers.died == MovedKeys(compared=4, moved=2, moved_pct=50.0, of_it=2,
                                     moved_not_of_it=0)  # fmt: skip
    assert numbers.removed == MovedKeys(compared=5, moved=4, moved_pct=80.0, of_it=3,
                                        moved_not_of_it=1)  # fmt: skip
    no_scale_in = key_numbers(entries, ORIGIN, plan[:4], "api-4", back_s=ORIGIN + 19)
    assert no_scale_in.removed is None and no_scale_in.keys_up == 5
    unreloaded = key_numbers(entries, ORIGIN, plan, "api-4", back_s=ORIGIN + 19)
    assert unreloaded.removed is not None and unreloaded.removed.moved == 1  # old upstream


# --- derive: the typed numbers and their JSON view --------------------------------------------

SCHEMA = {
    "replicas", "phases", "by_phase", "per_second", "slow_replica", "slow_share_pct",
    "slow_mean_ms", "slow_p90_ms", "dead_replica", "dead_in_flight", "dead_tries",
    "dead_try_times_s", "dead_tries_allowed", "dead_errors", "last_error_after_s",
    "dead_phase_s", "back_after_s", "ready_after_s", "rejoined_after_s", "fail_timeout_s",
}  # fmt: skip
"""results.json's `extra` keys of every variant (as before the typed numbers)."""
KEYS_SCHEMA = {
    "keys_up", "keys_single_replica_pct",
    *(f"{when}_keys_{k}" for when in ("died", "removed")
      for k in ("compared", "moved", "moved_pct", "of_it", "moved_not_of_it")),
}  # fmt: skip
"""The hash variants' extra keys (null for the others)."""


def synthetic_hash_run(tmp_path: Path) -> tuple[VariantResult, list[Request]]:
    """Every key at home while all are up; api-4's keys elsewhere while it is dead; its
    first answer back at 19 s; the scale-in at 30 s."""
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
    events = [*EVENTS, {"t_s": 30.0, "what": "fault", "action": "remove", "service": "api",
                        "replica": 3}]  # fmt: skip
    result = run_of(40, events)
    result = replace(result, requests=len(requests))
    return result, requests


def test_derive_on_a_synthetic_hash_run(tmp_path: Path):
    """The whole derive hook: phases from the engine's events (the start's `took_s` is
    the start-up), the replica's return, and the keys before and after the scale-in."""
    result, requests = synthetic_hash_run(tmp_path)
    n = derive(DeriveContext(HASH, result, requests, tmp_path))
    assert [p.name for p in n.phases] == ["healthy", "slow", "dead", "back", "removed"]
    assert n.slow_replica == n.dead_replica == "api-4"
    assert (n.back_after_s, n.ready_after_s, n.rejoined_after_s) == (3.0, 2.0, 1.0)
    assert n.dead_tries == 1 and n.dead_errors == 0 and n.fail_timeout_s == 2.0
    assert n.keys_up == 8 and n.keys_single_replica_pct == 100.0
    assert (n.died_keys_moved, n.died_keys_moved_not_of_it) == (2, 0)
    assert (n.removed_keys_compared, n.removed_keys_moved) == (8, 2)
    assert n.removed_keys_moved_pct == 25.0 and n.removed_keys_of_it == 2
    assert n.removed_moved_pct() == 25.0
    slow = n.by_phase["slow"]
    assert slow.requests == 8 and n.slow_share_pct == 100 * slow.share["api-4"] == 25.0
    assert n.per_second["api-4"][:4] == (0, 2, 2, 2)
    assert n.fails_over(errors_within_s=4.0, rejoins_within_s=4.5)
    assert not n.fails_over(errors_within_s=4.0, rejoins_within_s=0.5)


def test_derive_json_view_keeps_the_extra_schema(tmp_path: Path):
    result, requests = synthetic_hash_run(tmp_path)
    hashed = derive(DeriveContext(HASH, result, requests, tmp_path))
    extra = json.loads(json.dumps(asdict(hashed)))
    assert set(extra) == SCHEMA | KEYS_SCHEMA
    assert extra["phases"][1] == {"start_s": 4.0, "end_s": 10.0, "name": "slow"}
    assert set(extra["by_phase"]["healthy"]) == {
        "requests", "share", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "errors", "count_502",
        "count_504",
    }  # fmt: skip
    assert extra["dead_try_times_s"] == [0.1] and extra["last_error_after_s"] is None
    with pytest.raises(FrozenInstanceError):
        hashed.__setattr__("dead_tries", 0)
    # round robin: no key numbers (null), the rest as for the hash
    plain = derive(DeriveContext(ROUND_ROBIN, result, requests, tmp_path))
    assert {k: v for k, v in asdict(plain).items() if k in KEYS_SCHEMA} == dict.fromkeys(
        KEYS_SCHEMA
    )
    assert plain.removed_moved_pct() != plain.removed_moved_pct()  # NaN: fails a check


def test_a_run_without_faults_has_numbers_that_fail_every_verdict(tmp_path: Path):
    n = derive(DeriveContext(ROUND_ROBIN, run_of(5.0, []), [req(1), req(2, "api-2")], tmp_path))
    assert isinstance(n, LoadBalancingNumbers) and [p.name for p in n.phases] == ["healthy"]
    assert n.slow_replica == "" and n.slow_mean_ms != n.slow_mean_ms  # NaN
    assert not n.fails_over(errors_within_s=4.0, rejoins_within_s=4.5)
