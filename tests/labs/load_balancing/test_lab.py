"""The load-balancing lab (labs/load_balancing/lab.py): its checks judged on synthetic
numbers (fast), its plots, and the lab end to end: real nginx, 4 api replicas (one slow,
then killed, then started again, then for the hash variants taken out of the upstream),
Locust (pytest -m lab)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult, read_requests
from labs.engine.analysis.windows import Window
from labs.engine.model.verdicts import judge, judge_check
from labs.load_balancing.lab import LAB, answers_per_second, latency_by_phase, share_by_phase
from labs.load_balancing.measure import LoadBalancingNumbers, PhaseNumbers
from labs.load_balancing.scenario import BALANCERS, RELOAD_SETTLE_S
from tests.conftest import passed_check

VARIANTS = (*(v.name for v in BALANCERS), "hash-plain", "no-health-check")
CHECKS = {
    "least_conn_beats_round_robin_with_a_slow_replica",
    "p2c_beats_round_robin_with_a_slow_replica",
    "least_conn_starves_the_slow_replica",
    *(f"{v.name.replace('-', '_')}_fails_over_a_dead_replica" for v in BALANCERS),
    "hash_consistent_moves_only_the_removed_replicas_keys",
}
REPLICAS = ["api-1", "api-2", "api-3", "api-4"]
PHASES = ["healthy", "slow", "dead", "back"]


def phase(requests: int, mean_ms: float, p90_ms: float, slow_share: float) -> PhaseNumbers:
    rest = round((1 - slow_share) / 3, 4)
    share = {"api-1": rest, "api-2": rest, "api-3": rest, "api-4": slow_share}
    return PhaseNumbers(requests, share, mean_ms, mean_ms, p90_ms, p90_ms, 0, 0, 0)


FAILED_OVER = LoadBalancingNumbers(
    replicas=tuple(REPLICAS),
    phases=(Window(0, 4, "healthy"), Window(4, 10, "slow")),
    by_phase={"healthy": phase(400, 55, 60, 0.25), "slow": phase(650, 70, 57, 0.015)},
    per_second={name: (25, 25, 25) for name in REPLICAS},
    slow_replica="api-4", slow_share_pct=1.5, slow_mean_ms=70.0, slow_p90_ms=57.0,
    dead_replica="api-4", dead_in_flight=3, dead_tries=3, dead_try_times_s=(0.0, 3.0, 6.0),
    dead_tries_allowed=7, dead_errors=0, last_error_after_s=None, dead_phase_s=6.0,
    back_after_s=5.3, ready_after_s=4.7, rejoined_after_s=0.6, fail_timeout_s=2.0,
)  # fmt: skip
"""least-conn as measured here: api-4 starved while slow, ejected while dead, back."""
ROUND_ROBIN = replace(
    FAILED_OVER,
    slow_share_pct=21.0,
    slow_mean_ms=274.0,
    slow_p90_ms=1004.0,
    by_phase={**FAILED_OVER.by_phase, "slow": phase(176, 274, 1004, 0.21)},
)
NO_HEALTH_CHECK = replace(ROUND_ROBIN, dead_tries=338, back_after_s=4.7, rejoined_after_s=0.0)


def moved(pct: float, compared: int = 500) -> dict[str, object]:
    return {"removed_keys_compared": compared, "removed_keys_moved": round(pct * compared / 100),
            "removed_keys_moved_pct": pct, "removed_keys_of_it": 120,
            "removed_keys_moved_not_of_it": 0}  # fmt: skip


HASH = replace(ROUND_ROBIN, **moved(22.8))
HASH_PLAIN = replace(ROUND_ROBIN, **moved(76.2))


def result(name: str, numbers: LoadBalancingNumbers) -> VariantResult:
    return VariantResult(name, 38, 3000, 0, {"200": 3000}, 0, 0, 0, 0, 0, 0).with_derived(numbers)


def measured() -> dict[str, VariantResult]:
    runs = {"round-robin": ROUND_ROBIN, "least-conn": FAILED_OVER, "p2c": FAILED_OVER,
            "weighted": FAILED_OVER, "hash": HASH, "hash-plain": HASH_PLAIN,
            "no-health-check": NO_HEALTH_CHECK}  # fmt: skip
    return {name: result(name, numbers) for name, numbers in runs.items()}


def check(name: str):  # noqa: ANN201
    return next(c for c in LAB.checks if c.name == name)


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    assert {c.name for c in LAB.checks} == CHECKS
    assert all(c.measure is not None for c in LAB.checks)
    for judged in judge(LAB, measured()):
        assert judged.passed and judged.proof == "proven", (judged.name, judged.detail)


def test_every_failover_check_is_proven_against_the_variant_without_health_checks():
    results = measured()
    for variant in BALANCERS:
        name = f"{variant.name.replace('-', '_')}_fails_over_a_dead_replica"
        assert LAB.twin_of(check(name), variant.name) == "no-health-check"
        judged = judge_check(LAB, check(name), results)
        assert judged.passed and judged.proof == "proven", judged.proof_detail
        assert "338 new requests" in judged.proof_detail


@pytest.mark.parametrize(
    "changes, why",
    [
        ({"back_after_s": None, "rejoined_after_s": None}, "never, before the run ended"),
        ({"back_after_s": 9.5, "rejoined_after_s": 4.8}, "4.8 s after it was ready"),
        ({"rejoined_after_s": None, "ready_after_s": None}, "ready after None s"),
        ({"dead_tries": 8}, "sent it 8 new requests"),
        ({"dead_errors": 4, "last_error_after_s": 4.5}, "the last 4.5 s after"),
    ],
)  # fmt: skip
def test_a_replica_not_ejected_or_not_back_fails_over_check(changes: dict, why: str):
    numbers = replace(FAILED_OVER, **changes)
    passed, detail = check("round_robin_fails_over_a_dead_replica").evaluate(
        {"round-robin": result("round-robin", numbers)}
    )
    assert not passed and why in detail


def test_the_key_check_needs_the_contrast_measured_on_enough_keys():
    keys = check("hash_consistent_moves_only_the_removed_replicas_keys")
    assert keys.variants == ("hash", "hash-plain") and not keys.not_applicable
    judged = judge_check(LAB, keys, measured())
    assert judged.passed and judged.proof == "proven", judged.detail
    assert judged.proof_detail.startswith("[hash <- hash-plain]")
    assert judged.value == 22.8
    for hash_pct, plain_pct, compared in ((36.0, 76.2, 500), (22.8, 59.0, 500), (22.8, 76.2, 399)):
        results = {"hash": result("hash", replace(ROUND_ROBIN, **moved(hash_pct, compared))),
                   "hash-plain": result("p", replace(ROUND_ROBIN, **moved(plain_pct)))}  # fmt: skip
        assert not keys.evaluate(results)[0], (hash_pct, plain_pct, compared)
    unmeasured = {"hash": result("hash", ROUND_ROBIN), "hash-plain": result("p", HASH_PLAIN)}
    assert not keys.evaluate(unmeasured)[0]


def test_the_latency_checks_need_both_ratios_and_enough_requests():
    faster = check("least_conn_beats_round_robin_with_a_slow_replica")
    results = measured()
    passed, detail = faster.evaluate(results)
    assert passed and "(0.26 x / 0.06 x) over 650 requests" in detail, detail
    assert faster.measure is not None and round(faster.measure(results), 2) == 0.26
    few = replace(FAILED_OVER, by_phase={"slow": phase(99, 70, 57, 0.015)})
    slow_p90 = replace(FAILED_OVER, slow_p90_ms=600.0)
    for numbers in (few, slow_p90):
        assert not faster.evaluate({**results, "least-conn": result("least-conn", numbers)})[0]
    starves = check("least_conn_starves_the_slow_replica")
    passed, detail = starves.evaluate(results)
    assert passed and "round-robin 21 vs least-conn 1.5 (14.00x)" in detail, detail
    fair = result("least-conn", replace(FAILED_OVER, slow_share_pct=11.0))
    assert not starves.evaluate({**results, "least-conn": fair})[0]


def test_a_run_without_numbers_is_not_passed():
    results = {
        **measured(),
        "least-conn": VariantResult("least-conn", 38, 0, 0, {}, 0, 0, 0, 0, 0, 0),
    }
    judged = {j.name: j for j in judge(LAB, results)}
    assert not judged["least_conn_fails_over_a_dead_replica"].passed
    assert not judged["least_conn_starves_the_slow_replica"].passed


def test_plots_step_through_the_phases():
    r = result("least-conn", FAILED_OVER)
    shares = share_by_phase(r)
    assert shares["api-4"] == ([0, 4], [25.0, 1.5])
    assert latency_by_phase(r)["p90"] == ([0, 4], [60, 57])
    assert answers_per_second(r)["api-1"] == ([0, 1, 2], [25, 25, 25])


@pytest.mark.lab
def test_load_balancing_check_slow_dead_back_and_scale_in(lab_env, tmp_path: Path):
    document = passed_check("load-balancing", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    # every check could fail: re-judged on its twin's numbers, it does
    assert {c["name"]: c["fails_without_fix"] for c in document["checks"]} == dict.fromkeys(
        CHECKS, True
    )

    variants = document["variants"]
    assert set(variants) == set(VARIANTS)
    for name, variant in variants.items():
        extra = variant["extra"]
        scaled_in = name.startswith("hash")
        assert [p["name"] for p in extra["phases"]] == PHASES + ["removed"] * scaled_in, name
        assert extra["replicas"] == REPLICAS, name
        # every answer names its replica, and the engine counted them
        assert sum(variant["replicas"].values()) == variant["status"].get("200", 0), name
        healthy, dead = extra["by_phase"]["healthy"], extra["by_phase"]["dead"]
        assert dead["share"]["api-4"] == 0.0, name  # nobody answers for a dead replica
        assert extra["back_after_s"] is not None, name  # and it came back
        assert extra["by_phase"]["back"]["share"]["api-4"] > 0.0, name
        if scaled_in:  # taken out of the upstream, it gets nothing once the reload is done
            removed = next(p for p in extra["phases"] if p["name"] == "removed")
            after = variant["origin_s"] + removed["start_s"] + RELOAD_SETTLE_S
            requests = read_requests(Path(document["results_dir"]) / name / "requests.csv")
            assert not [r for r in requests if r.replica == "api-4" and r.start_s >= after]
        else:
            assert extra["keys_up"] is None, name  # keys are the hash variants' numbers
        if name != "weighted":
            assert all(0.15 <= share <= 0.35 for share in healthy["share"].values()), name
    for name in ("hash", "hash-plain"):
        hashed = variants[name]["extra"]
        assert hashed["keys_single_replica_pct"] == 100.0, name  # key affinity while all up
        # marked down by nginx, a server stays in the hash: only its keys move, either way
        assert hashed["died_keys_moved_not_of_it"] == 0, name
    assert variants["hash"]["extra"]["removed_keys_moved_not_of_it"] == 0  # the ring holds
    assert variants["no-health-check"]["extra"]["dead_tries"] > 50  # never ejected

    run_dir = Path(document["results_dir"])
    for name in ("requests.csv", "nginx/access.log", "nginx/nginx.conf"):
        assert (run_dir / "round-robin" / name).is_file(), name
    assert "weight=1 " in (run_dir / "weighted" / "nginx" / "nginx.conf").read_text()
    assert len(list((run_dir / "plots").glob("*.png"))) >= 3
