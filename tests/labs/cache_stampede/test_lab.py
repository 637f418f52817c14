"""The cache-stampede lab (labs/cache_stampede/lab.py): its checks judged on synthetic
numbers (fast), and the lab end to end: real nginx with its cache, the origin, Locust
(pytest -m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.cache_stampede.lab import LAB
from labs.cache_stampede.measure import CacheNumbers
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "cache_stampedes_on_every_expiry",
    "cache_lock_still_stampedes_on_expiry",
    "cache_lock_coalesces_the_cold_fill",
    "stale_while_revalidate_computes_once_per_expiry",
    "cache_lock_p99_5x_stale_while_revalidate",
    "stale_if_error_serves_through_the_outage",
    "origin_down_fails_during_the_outage",
    "redis_cache_aside_stampedes_on_every_expiry",
    "redis_single_flight_computes_once_per_expiry",
}
SWR = CacheNumbers(
    computations=6, failed_computations=0, cold_fill=1, expiries=5, per_expiry=1.0,
    per_expiry_max=1, warm_requests=8513, warm_p50_ms=0.6, warm_p99_ms=2.0,
    outage_requests=0, outage_served_pct=100.0, computations_per_s=((), ()),
)  # fmt: skip
"""stale-while-revalidate, as measured here (results of 2026-12-06)."""


def measured(**changes: CacheNumbers) -> dict[str, VariantResult]:
    stampede = replace(SWR, computations=1131, cold_fill=168, per_expiry=192.6,
                       per_expiry_max=199, warm_p99_ms=486.9)  # fmt: skip
    numbers = {
        "no-cache": replace(SWR, computations=4497, cold_fill=4497, expiries=0, per_expiry=0.0),
        "cache": stampede,
        "cache-lock": replace(stampede, cold_fill=1, per_expiry=184.2),
        "stale-while-revalidate": SWR,
        "origin-down": replace(SWR, outage_requests=2849, outage_served_pct=35.21),
        "stale-if-error": replace(SWR, outage_requests=2763, outage_served_pct=100.0),
        "redis-cache-aside": replace(stampede, per_expiry=190.0),
        "redis-single-flight": SWR,
        **changes,
    }
    return {name: empty_run(name, n) for name, n in numbers.items()}


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed and c.fails_without_fix is True for c in checks.values()), checks
    assert checks["cache_stampedes_on_every_expiry"].detail == (
        "cache: 192.6 computations per expiry (max 199) over 5 expiries, 168 for the cold "
        "fill; expected >= 10 per expiry over >= 3 expiries"
    )
    assert checks["stale_if_error_serves_through_the_outage"].value == 100.0


def test_too_few_expiries_or_a_second_computation_fail():
    few = measured(**{"stale-while-revalidate": replace(SWR, expiries=2)})
    checks = {c.name: c for c in judge(LAB, few)}
    assert not checks["stale_while_revalidate_computes_once_per_expiry"].passed
    double = measured(**{"stale-while-revalidate": replace(SWR, per_expiry=1.4)})
    checks = {c.name: c for c in judge(LAB, double)}
    assert not checks["stale_while_revalidate_computes_once_per_expiry"].passed
    served = measured(**{"stale-if-error": replace(SWR, outage_requests=10,
                                                   outage_served_pct=98.9)})  # fmt: skip
    checks = {c.name: c for c in judge(LAB, served)}
    assert not checks["stale_if_error_serves_through_the_outage"].passed


def test_a_run_without_numbers_is_not_passed():
    results = {**measured(), "cache": empty_run("cache", None)}
    checks = {c.name: c for c in judge(LAB, results)}
    cache = checks["cache_stampedes_on_every_expiry"]
    assert not cache.passed and "has no CacheNumbers" in cache.detail


@pytest.mark.lab
def test_cache_stampede_check_stampedes_and_what_coalesces_them(lab_env, tmp_path: Path):
    document = passed_check("cache-stampede", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    variants = document["variants"]
    assert set(variants) == {v.name for v in LAB.variants}
    for name, variant in variants.items():
        assert list(variant["extra"]) == list(asdict(SWR)), name  # results.json's keys
        assert (
            variant["services"]["origin"][0]["computations"] == variant["extra"]["computations"]
        ), name
    no_cache = variants["no-cache"]
    assert no_cache["extra"]["computations"] == no_cache["requests"]  # every request computed
    assert variants["origin-down"]["extra"]["failed_computations"] > 0
