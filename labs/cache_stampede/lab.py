"""cache-stampede: a hot key's cached answer expires under load, and what keeps the
origin from computing it once per waiting client.

The lab's verdicts over the typed numbers (`CacheNumbers`), its plots, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labs.cache_stampede.exercise import EXERCISE
from labs.cache_stampede.measure import CacheNumbers, derive
from labs.cache_stampede.scenario import (
    COALESCED_MAX,
    DOWN_SERVED_MAX_PCT,
    MIN_EXPIRIES,
    SERVED_MIN_PCT,
    STAMPEDE_MIN,
    SWR_P99_FACTOR,
    VARIANTS,
)
from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import ratio_at_least
from labs.engine.model.spec import Check, Lab, Plot, Series

Results = Mapping[str, VariantResult]


def _n(result: VariantResult) -> CacheNumbers:
    return result.numbers(CacheNumbers)


def _expiries(n: CacheNumbers) -> str:
    return (
        f"{n.per_expiry:g} computations per expiry (max {n.per_expiry_max}) over "
        f"{n.expiries} expiries, {n.cold_fill} for the cold fill"
    )


def per_expiry(variant: str, low: float, high: float, label: str, **twins: str) -> Check:
    """`variant`'s computations per expiry lie within [low, high], over >= MIN_EXPIRIES."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _n(results[variant])
        passed = low <= n.per_expiry <= high and n.expiries >= MIN_EXPIRIES
        bound = f">= {low:g}" if high == float("inf") else f"<= {high:g}"
        return passed, (
            f"{variant}: {_expiries(n)}; expected {bound} per expiry over >= {MIN_EXPIRIES} "
            "expiries"
        )

    return Check(
        f"{variant}_{label}".replace("-", "_"),
        evaluate,
        (variant,),
        twins=twins,
        measure=lambda results: _n(results[variant]).per_expiry,
    )


def cold_fill_coalesced(variant: str) -> Check:
    def evaluate(results: Results) -> tuple[bool, str]:
        n = _n(results[variant])
        return n.cold_fill <= COALESCED_MAX, (
            f"{variant}: {n.cold_fill} computations for the cold fill (the first burst); "
            f"expected <= {COALESCED_MAX:g}"
        )

    return Check(
        f"{variant}_coalesces_the_cold_fill".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _n(results[variant]).cold_fill,
    )


def served_during_outage(variant: str, low: float, high: float, label: str) -> Check:
    def evaluate(results: Results) -> tuple[bool, str]:
        n = _n(results[variant])
        passed = low <= n.outage_served_pct <= high and n.outage_requests > 0
        bound = f">= {low:g}" if high >= 100 else f"<= {high:g}"
        return passed, (
            f"{variant}: {n.outage_served_pct:g} % of {n.outage_requests} requests answered 200 "
            f"while the origin failed ({n.failed_computations} failed computations); "
            f"expected {bound} %"
        )

    return Check(
        f"{variant}_{label}".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _n(results[variant]).outage_served_pct,
    )


def _warm_p99(result: VariantResult) -> float:
    return _n(result).warm_p99_ms


CHECKS = (
    per_expiry("cache", STAMPEDE_MIN, float("inf"), "stampedes_on_every_expiry"),
    per_expiry(
        "cache-lock",
        STAMPEDE_MIN,
        float("inf"),
        "still_stampedes_on_expiry",
        **{"cache-lock": "stale-while-revalidate"},
    ),
    cold_fill_coalesced("cache-lock"),
    per_expiry(
        "stale-while-revalidate",
        0,
        COALESCED_MAX,
        "computes_once_per_expiry",
        **{"stale-while-revalidate": "cache"},
    ),
    ratio_at_least(
        "cache_lock_p99_5x_stale_while_revalidate",
        "cache-lock",
        "stale-while-revalidate",
        _warm_p99,
        1 / SWR_P99_FACTOR,
        "p99 after the warm-up, ms",
    ),
    served_during_outage("stale-if-error", SERVED_MIN_PCT, 100, "serves_through_the_outage"),
    served_during_outage("origin-down", 0, DOWN_SERVED_MAX_PCT, "fails_during_the_outage"),
    per_expiry("redis-cache-aside", STAMPEDE_MIN, float("inf"), "stampedes_on_every_expiry"),
    per_expiry("redis-single-flight", 0, COALESCED_MAX, "computes_once_per_expiry"),
)


def computations(result: VariantResult) -> Series:
    xs, ys = _n(result).computations_per_s
    return {"origin computations": (xs, ys)}


LAB = Lab(
    name="cache-stampede",
    title="Cache stampede: a hot key expiring under load",
    question="When a hot key's cached answer expires, why does the origin compute it once "
    "per waiting client, and what makes it compute it once?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.computations",
        "extra.cold_fill",
        "extra.expiries",
        "extra.per_expiry",
        "extra.warm_p99_ms",
        "extra.outage_served_pct",
        "status.500",
    ),
    derive=derive,
    plots=(
        Plot("Origin computations (per 100 ms, as a rate)", "per second", computations, "bar"),
        Plot("Latency", "ms", S.latency),
    ),
    exercise=EXERCISE,
)
