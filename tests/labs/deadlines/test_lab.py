"""The deadlines lab (labs/deadlines/lab.py): its checks judged on synthetic numbers
(fast), and the lab end to end: real nginx, two gateways, the api's worker pool, Locust
(pytest -m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.deadlines.hedging import HedgeNumbers, Phase
from labs.deadlines.lab import LAB
from labs.deadlines.measure import HEDGE_NAMES, DeadlineNumbers
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "steady_load_before_the_fault",
    "per_hop_wastes_work",
    "deadline_wastes_little",
    "no_timeouts_catalog_piles_up_10x_deadline",
    "hedged_p99_at_most_0_3x_unhedged",
    "hedged_hedges_within_budget_when_all_slow",
}
DEADLINE = DeadlineNumbers(
    slow_start_s=4.6, slow_end_s=12.6, checkout_slow_requests=200, checkout_slow_ok=60,
    checkout_slow_gave_up=0, checkout_slow_p50_ms=20.0, checkout_slow_p99_ms=700.0,
    catalog_before_p99_ms=60.0, catalog_slow_requests=80, catalog_slow_p99_ms=80.0,
    api_work_pieces=60, api_work_s=30.0, wasted_work_s=0.1, wasted_pct=0.33,
    useful_work_s=29.9, unmatched_work=0, api_shed=140, api_late=0, budget_exhausted=3,
    peak_in_flight={"edge": 12, "orders": 6, "api": 5}, in_flight={},
)  # fmt: skip
"""A deadline run's shape (synthetic)."""


TAIL = Phase(1.0, 8.6, requests=990, ok=990, p50_ms=23.0, p99_ms=80.0, over_delay=65,
             api_requests=1055)  # fmt: skip
ALL_SLOW = Phase(10.6, 14.7, requests=181, ok=181, p50_ms=504.0, p99_ms=550.0,
                 over_delay=181, api_requests=200)  # fmt: skip
HEDGED = HedgeNumbers(tail=TAIL, all_slow=ALL_SLOW, tail_p99_ms=80.0, tail_extra_pct=6.57,
                      all_slow_extra_pct=10.5, hedges=103, hedges_denied=280,
                      hedge_won=51)  # fmt: skip
"""A hedged run's shape (numbers from a real run)."""
UNHEDGED = HedgeNumbers(
    tail=replace(TAIL, p99_ms=504.0, api_requests=990),
    all_slow=replace(ALL_SLOW, api_requests=181),
    tail_p99_ms=504.0, tail_extra_pct=0.0, all_slow_extra_pct=0.0,
    hedges=0, hedges_denied=0, hedge_won=0,
)  # fmt: skip


def result(variant: str, numbers: DeadlineNumbers | HedgeNumbers | None) -> VariantResult:
    events = [{"t_s": 4.6, "what": "fault", "service": "api", "settings": {"work_factor": 20}}]
    return empty_run(variant, numbers, events=events)


def measured(hedged: HedgeNumbers = HEDGED, **deadline: object) -> dict[str, VariantResult]:
    stuck = replace(DEADLINE, catalog_slow_p99_ms=4000.0, catalog_slow_requests=30, wasted_pct=0)
    wasteful = replace(DEADLINE, wasted_work_s=27.0, wasted_pct=90.0, useful_work_s=3.0)
    return {
        "no-timeouts": result("no-timeouts", stuck),
        "per-hop": result("per-hop", wasteful),
        "deadline": result("deadline", replace(DEADLINE, **deadline)),
        "unhedged": result("unhedged", UNHEDGED),
        "hedged": result("hedged", hedged),
    }


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed for c in checks.values()), checks
    proofs = {c.name: c.fails_without_fix for c in checks.values()}
    assert proofs == {name: True for name in CHECKS} | {
        "steady_load_before_the_fault": "not_applicable"
    }
    assert checks["per_hop_wastes_work"].detail == (
        "per-hop: 27.0 of 30.0 api work-seconds in the slow phase (60 requests) done after "
        "the client stopped waiting (90.0 %), expected >= 30 %"
    )
    assert checks["no_timeouts_catalog_piles_up_10x_deadline"].value == 50
    assert checks["hedged_p99_at_most_0_3x_unhedged"].detail == (
        "p99 with a slow tail: hedged 80 ms (990 requests) vs unhedged 504 ms (990) (0.16 x), "
        "hedged sent 6.6 % extra api requests (1055 reached the api); expected <= 0.3 x and "
        "<= 10 % extra over >= 500 requests each"
    )
    assert checks["hedged_hedges_within_budget_when_all_slow"].detail == (
        "hedged, every replica slow: 10.5 % extra api requests (200 reached the api for 181 "
        "client requests) while 100 % of requests outlived the 60 ms hedge delay; the "
        "gateway denied 280 hedges; expected 5 .. 13 % (a 10% budget)"
    )


@pytest.mark.parametrize(
    ("tail", "all_slow", "failed"),
    [
        ({"p99_ms": 160.0}, {}, "hedged_p99_at_most_0_3x_unhedged"),
        ({"api_requests": 1100}, {}, "hedged_p99_at_most_0_3x_unhedged"),
        ({"requests": 400, "api_requests": 420}, {}, "hedged_p99_at_most_0_3x_unhedged"),
        ({}, {"api_requests": 362}, "hedged_hedges_within_budget_when_all_slow"),
        ({}, {"api_requests": 185}, "hedged_hedges_within_budget_when_all_slow"),
    ],
)
def test_a_slow_tail_too_many_hedges_or_too_few_requests_fail(tail, all_slow, failed):
    hedged = replace(HEDGED, tail=replace(TAIL, **tail), all_slow=replace(ALL_SLOW, **all_slow))
    checks = {c.name: c for c in judge(LAB, measured(hedged))}
    assert [name for name, c in checks.items() if not c.passed] == [failed]


def test_wasting_more_doing_nothing_or_too_few_requests_fail():
    checks = {c.name: c for c in judge(LAB, measured(wasted_pct=2.5))}
    assert not checks["deadline_wastes_little"].passed
    checks = {c.name: c for c in judge(LAB, measured(useful_work_s=9.0))}
    assert not checks["deadline_wastes_little"].passed
    checks = {c.name: c for c in judge(LAB, measured(catalog_slow_requests=19))}
    assert not checks["no_timeouts_catalog_piles_up_10x_deadline"].passed
    results = {**measured(), "deadline": result("deadline", None)}
    checks = {c.name: c for c in judge(LAB, results)}
    assert not checks["deadline_wastes_little"].passed


@pytest.mark.lab
def test_deadlines_check_wastes_and_piles_up_without_the_budget(lab_env, tmp_path: Path):
    document = passed_check("deadlines", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    variants = document["variants"]
    assert set(variants) == {"no-timeouts", "per-hop", "deadline", "unhedged", "hedged"}
    for name in ("unhedged", "hedged"):
        assert list(variants[name]["extra"]) == list(asdict(HEDGED)), name
    assert variants["hedged"]["extra"]["hedges_denied"] > 0
    assert variants["unhedged"]["extra"]["hedges"] == 0
    for name, variant in ((n, v) for n, v in variants.items() if n not in HEDGE_NAMES):
        extra = variant["extra"]
        assert list(extra) == list(asdict(DEADLINE)), name  # results.json's keys
        assert extra["api_work_pieces"] > 0 and extra["unmatched_work"] <= 10, name
        assert set(extra["peak_in_flight"]) == {"edge", "orders", "api"}, name
    assert variants["no-timeouts"]["extra"]["checkout_slow_gave_up"] == 0
    assert variants["deadline"]["extra"]["api_shed"] > 0
    run_dir = Path(document["results_dir"])
    for name in ("calls.csv", "worklog.json", "requests.csv"):
        assert (run_dir / "per-hop" / name).is_file(), name
