"""overload: an overload that outlives its trigger (a metastable failure), and the fixes
that let the system recover.

The lab's verdicts over the typed numbers (`OverloadNumbers`), its plots, and `LAB`.
The story and the variants are in scenario.py, the numbers in measure.py, the
exercise in exercise.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import load_before_fault
from labs.engine.model.spec import Check, Lab, Plot, Series
from labs.overload.exercise import EXERCISE
from labs.overload.measure import OverloadNumbers, derive
from labs.overload.scenario import (
    BUSY,
    LEAD_S,
    MIN_BEFORE,
    RATE_TOLERANCE,
    RECOVERED,
    RECOVERY_S,
    STAYS_DOWN,
    VARIANTS,
)

Results = Mapping[str, VariantResult]


def _numbers(results: Results, variant: str) -> OverloadNumbers:
    return results[variant].numbers(OverloadNumbers)


def stays_down(variant: str) -> Check:
    """Goodput after the trigger <= STAYS_DOWN x before, with the api busy all along."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.stays_down(STAYS_DOWN, BUSY), (
            f"{variant}: {n.goodput_summary()}, the api finishing "
            f"{n.throughput_after_per_s:g}/s of its {n.capacity_per_s:g}/s "
            f"({100 * n.busy_ratio:.0f} %, {n.api_late:g} answers too late in all); expected "
            f"<= {100 * STAYS_DOWN:g} % of before with the api >= {100 * BUSY:g} % busy"
        )

    return Check(
        f"{variant}_stays_down_after_the_trigger".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).goodput_ratio,
    )


def recovers(variant: str) -> Check:
    """Goodput from RECOVERY_S after the trigger ends >= RECOVERED x before."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.recovers(RECOVERED, MIN_BEFORE), (
            f"{variant}: {n.goodput_summary()}; expected >= {100 * RECOVERED:g} % over >= "
            f"{MIN_BEFORE} requests before"
        )

    return Check(
        f"{variant}_recovers_within_{RECOVERY_S:g}s".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).goodput_ratio,
    )


def open_loop(variant: str) -> Check:
    """The offered rate holds while the answers slow down: the load is open-loop."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.open_loop(RATE_TOLERANCE), (
            f"{variant}: {n.offered_rate_per_s:g} new requests/s sent from the trigger to the "
            f"end vs a target of {n.target_rate_per_s:g}/s ({100 * n.offered_error:.1f} % off; "
            f"send lag p99 {n.send_lag_p99_ms:g} ms) while the median request took "
            f"{n.after.latency_p50_ms:,.0f} ms vs {n.before.latency_p50_ms:,.0f} ms before; "
            f"expected within {100 * RATE_TOLERANCE:g} %"
        )

    return Check(
        f"{variant}_load_is_open_loop",
        evaluate,
        (variant,),
        not_applicable="a precondition of the experiment (the load does not slow down with "
        "the server), not a fix",
        measure=lambda results: _numbers(results, variant).offered_error,
    )


CHECKS = (
    load_before_fault(LEAD_S),
    open_loop("broken"),
    stays_down("broken"),
    recovers("short-trigger"),
    recovers("low-load"),
    recovers("retry-budget"),
    recovers("client-throttling"),
    recovers("bounded-queue"),
)


# --- plots -----------------------------------------------------------------------------------


def rates(result: VariantResult) -> Series:
    return result.numbers(OverloadNumbers).series


LAB = Lab(
    name="overload",
    title="Metastable failure: an overload that outlives its trigger",
    question="Why does a service stay down after the spike that overloaded it is gone, "
    "and what lets it recover?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "extra.goodput_before_per_s",
        "extra.goodput_after_per_s",
        "extra.goodput_ratio",
        "extra.throughput_after_per_s",
        "extra.offered_rate_per_s",
        "extra.attempts",
        "extra.api_late",
        "extra.api_queue_max",
    ),
    derive=derive,
    exercise=EXERCISE,
    plots=(
        Plot(
            "New requests, attempts sent, api throughput and goodput per second",
            "per second",
            rates,
        ),
    ),
)
