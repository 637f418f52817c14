"""deadlines: what each timeout design costs across three hops when a dependency turns slow,
and what hedged requests (within a budget) do for a slow tail.

The lab's verdicts over the typed numbers (`DeadlineNumbers`), its plots, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from labs.deadlines.exercise import EXERCISE
from labs.deadlines.hedging import HedgeNumbers
from labs.deadlines.measure import WORK_LOG, DeadlineNumbers, derive
from labs.deadlines.scenario import (
    BUDGET_BAND_PCT,
    HEDGE_BUDGET_RATIO,
    HEDGE_DELAY_MS,
    HEDGE_EXTRA_AT_MOST_PCT,
    HEDGE_P99_AT_MOST,
    LEAD_S,
    MIN_HEDGE_REQUESTS,
    MIN_REQUESTS,
    MIN_USEFUL_WORK_S,
    PILE_UP_FACTOR,
    VARIANTS,
    WASTED_AT_LEAST_PCT,
    WASTED_AT_MOST_PCT,
)
from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import load_before_fault
from labs.engine.model.spec import Check, Lab, Plot, Series

Results = Mapping[str, VariantResult]


def _numbers(results: Results, variant: str) -> DeadlineNumbers:
    return results[variant].numbers(DeadlineNumbers)


def _work(n: DeadlineNumbers) -> str:
    return (
        f"{n.wasted_work_s:.1f} of {n.api_work_s:.1f} api work-seconds in the slow phase "
        f"({n.api_work_pieces} requests) done after the client stopped waiting "
        f"({n.wasted_pct:.1f} %)"
    )


def wastes_work(variant: str, at_least_pct: float) -> Check:
    """`variant`'s api spends >= at_least_pct of its slow-phase work on requests whose
    client had already stopped waiting."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.wasted_pct >= at_least_pct, (
            f"{variant}: {_work(n)}, expected >= {at_least_pct:g} %"
        )

    return Check(
        f"{variant}_wastes_work".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).wasted_pct,
    )


def wastes_little(variant: str, at_most_pct: float, min_useful_s: float) -> Check:
    """`variant`'s api wastes <= at_most_pct of its slow-phase work and still does
    >= min_useful_s of useful work (shedding everything would waste nothing too)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        passed = n.wasted_pct <= at_most_pct and n.useful_work_s >= min_useful_s
        return passed, (
            f"{variant}: {_work(n)}, {n.useful_work_s:.1f} useful; expected <= "
            f"{at_most_pct:g} % wasted and >= {min_useful_s:g} useful work-seconds"
        )

    return Check(
        f"{variant}_wastes_little".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).wasted_pct,
    )


def catalog_piles_up(broken: str, fixed: str, factor: float, min_requests: int) -> Check:
    """Under `broken` the unrelated /catalog's p99 in the slow phase is >= factor x fixed's."""

    def ratio(results: Results) -> float:
        bad, good = (_numbers(results, v).catalog_slow_p99_ms for v in (broken, fixed))
        return bad / good if good else math.inf

    def evaluate(results: Results) -> tuple[bool, str]:
        bad, good = (_numbers(results, v) for v in (broken, fixed))
        enough = min(bad.catalog_slow_requests, good.catalog_slow_requests) >= min_requests
        return ratio(results) >= factor and enough, (
            f"/catalog p99 in the slow phase: {broken} {bad.catalog_slow_p99_ms:,.0f} ms "
            f"({bad.catalog_slow_requests} requests) vs {fixed} {good.catalog_slow_p99_ms:,.0f} "
            f"ms ({good.catalog_slow_requests}) ({ratio(results):.1f} x), expected >= "
            f"{factor:g} x over >= {min_requests} requests each"
        )

    name = f"{broken}_catalog_piles_up_{factor:g}x_{fixed}".replace("-", "_")
    return Check(name, evaluate, (broken, fixed), measure=ratio)


def hedging_cuts_the_tail(
    hedged: str, unhedged: str, at_most: float, extra_pct: float, min_requests: int
) -> Check:
    """In the tail phase `hedged`'s p99 is <= at_most x `unhedged`'s, for <= extra_pct
    extra api requests (counted by the api replicas themselves)."""

    def ratio(results: Results) -> float:
        good, bad = (results[v].numbers(HedgeNumbers).tail.p99_ms for v in (hedged, unhedged))
        return good / bad if bad else math.inf

    def evaluate(results: Results) -> tuple[bool, str]:
        good, bad = (results[v].numbers(HedgeNumbers).tail for v in (hedged, unhedged))
        enough = min(good.requests, bad.requests) >= min_requests
        passed = ratio(results) <= at_most and good.extra_pct <= extra_pct and enough
        return passed, (
            f"p99 with a slow tail: {hedged} {good.p99_ms:,.0f} ms ({good.requests} requests) "
            f"vs {unhedged} {bad.p99_ms:,.0f} ms ({bad.requests}) ({ratio(results):.2f} x), "
            f"{hedged} sent {good.extra_pct:.1f} % extra api requests ({good.api_requests} "
            f"reached the api); expected <= {at_most:g} x and <= {extra_pct:g} % extra over "
            f">= {min_requests} requests each"
        )

    name = f"{hedged}_p99_at_most_{at_most:g}x_{unhedged}".replace("-", "_").replace(".", "_")
    return Check(name, evaluate, (hedged, unhedged), measure=ratio)


def budget_caps_hedges(variant: str, band_pct: tuple[float, float]) -> Check:
    """When every replica is slow, `variant` sends extra api requests within band_pct:
    about its budget, although every request outlives the hedge delay."""

    def extra(results: Results) -> float:
        return results[variant].numbers(HedgeNumbers).all_slow.extra_pct

    def evaluate(results: Results) -> tuple[bool, str]:
        n = results[variant].numbers(HedgeNumbers)
        slow, low, high = n.all_slow, *band_pct
        return low <= slow.extra_pct <= high, (
            f"{variant}, every replica slow: {slow.extra_pct:.1f} % extra api requests "
            f"({slow.api_requests} reached the api for {slow.requests} client requests) while "
            f"{slow.over_delay_pct:.0f} % of requests outlived the {HEDGE_DELAY_MS} ms hedge "
            f"delay; the gateway denied {n.hedges_denied} hedges; expected {low:g} .. "
            f"{high:g} % (a {HEDGE_BUDGET_RATIO:.0%} budget)"
        )

    name = f"{variant}_hedges_within_budget_when_all_slow".replace("-", "_")
    return Check(name, evaluate, (variant,), measure=extra)


CHECKS = (
    load_before_fault(LEAD_S),
    wastes_work("per-hop", WASTED_AT_LEAST_PCT),
    wastes_little("deadline", WASTED_AT_MOST_PCT, MIN_USEFUL_WORK_S),
    catalog_piles_up("no-timeouts", "deadline", PILE_UP_FACTOR, MIN_REQUESTS),
    hedging_cuts_the_tail(
        "hedged", "unhedged", HEDGE_P99_AT_MOST, HEDGE_EXTRA_AT_MOST_PCT, MIN_HEDGE_REQUESTS
    ),
    budget_caps_hedges("hedged", BUDGET_BAND_PCT),
)


def in_flight_lines(result: VariantResult) -> Series:
    derived = result.derived
    return derived.in_flight if isinstance(derived, DeadlineNumbers) else {}


def latency_lines(result: VariantResult) -> Series:
    return S.latency(result, (99,))


LAB = Lab(
    name="deadlines",
    title="Timeouts and deadline budgets across hops",
    question="What does each timeout design cost when a dependency three hops down turns slow?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.wasted_pct",
        "extra.useful_work_s",
        "extra.catalog_slow_p99_ms",
        "extra.checkout_slow_p99_ms",
        "extra.checkout_slow_gave_up",
        "extra.api_shed",
        "extra.tail_p99_ms",
        "extra.tail_extra_pct",
        "extra.all_slow_extra_pct",
    ),
    sample_interval_s=0.25,
    derive=derive,
    collect=(WORK_LOG,),
    exercise=EXERCISE,
    plots=(
        Plot("Calls in flight per hop (api: queued + working)", "in flight", in_flight_lines),
        Plot("p99 latency, per second", "p99 (ms)", latency_lines),
    ),
)
