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
from labs.engine.model.spec import Check, Lab, Plot, Series, Table
from labs.overload.exercise import EXERCISE
from labs.overload.measure import OverloadNumbers, derive
from labs.overload.scenario import (
    BUSY,
    CAPACITY_PER_S,
    FACTOR,
    LEAD_S,
    MIN_BEFORE,
    RATE_TOLERANCE,
    RECOVERED,
    RECOVERY_S,
    STAYS_DOWN,
    THROTTLE_K,
    THROTTLE_SLACK,
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


def throttles(variant: str) -> Check:
    """Attempts reaching the backend during the overload <= THROTTLE_K x (1 + slack) x
    the attempts it accepted."""
    at_most = THROTTLE_K * (1 + THROTTLE_SLACK)

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.throttled(at_most), (
            f"{variant}: {n.overload_attempts:,} attempts reached the backend from the "
            f"trigger's start to {RECOVERY_S:g} s after its end, {n.overload_accepts:,} of them "
            f"accepted: {n.attempts_per_accept:g} per accept; expected <= {at_most:g} "
            f"(K = {THROTTLE_K:g} + {100 * THROTTLE_SLACK:g} %)"
        )

    return Check(
        f"{variant}_sends_at_most_{at_most:g}x_its_accepts".replace("-", "_").replace(".", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).attempts_per_accept,
    )


def open_loop(variant: str) -> Check:
    """The clients keep to their arrival schedule while the answers slow down: the load is
    open-loop."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.open_loop(RATE_TOLERANCE), (
            f"{variant}: {n.offered_rate_per_s:g} new requests/s sent from the trigger to the "
            f"end of the arrivals vs {n.scheduled_rate_per_s:g}/s scheduled "
            f"({100 * n.offered_error:.1f} % off; send lag p99 {n.send_lag_p99_ms:g} ms; the "
            f"seeded Poisson schedule for a target of {n.target_rate_per_s:g}/s) while the "
            f"median request took {n.after.latency_p50_ms:,.0f} ms vs "
            f"{n.before.latency_p50_ms:,.0f} ms before; expected within "
            f"{100 * RATE_TOLERANCE:g} %"
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
    recovers("adaptive-limit"),
    throttles("client-throttling"),
)


# --- plots -----------------------------------------------------------------------------------


def rates(result: VariantResult) -> Series:
    return result.numbers(OverloadNumbers).series


def gateway_limit(result: VariantResult) -> Series:
    """The same one label for every variant (one overlaid panel); empty without a gateway."""
    return {"gateway limit": result.numbers(OverloadNumbers).limit.over_time}


SAME_SYSTEM = ("broken", "short-trigger", "low-load")
"""The variants without a fix: only the trigger's length or the load differ."""


def hysteresis(results: Results) -> list[tuple[str, ...]]:
    """One row per variant that ran: trigger length, load, fix, and the outcome."""
    rows = []
    for name in (v.name for v in VARIANTS if v.name in results):
        n = results[name].numbers(OverloadNumbers)
        rows.append(
            (
                name,
                f"{n.trigger_end_s - n.trigger_start_s:.1f}",
                f"{n.before.arrivals_per_s:g} ({n.target_rate_per_s:g})",
                "none" if name in SAME_SYSTEM else name,
                f"{n.goodput_before_per_s:g} -> {n.goodput_after_per_s:g}",
                f"{100 * n.goodput_ratio:.0f} %",
                "yes" if n.goodput_ratio >= RECOVERED else "NO",
            )
        )
    return rows


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
        "extra.attempts_per_accept",
    ),
    derive=derive,
    exercise=EXERCISE,
    plots=(
        Plot(
            "New requests, attempts sent, api throughput and goodput per second",
            "per second",
            rates,
        ),
        Plot("The gateway's adaptive concurrency limit (100 ms)", "calls", gateway_limit, "step"),
    ),
    tables=(
        Table(
            "Hysteresis: trigger length and load vs outcome (this run)",
            (
                "variant",
                "trigger (s, measured)",
                "new requests/s before (target)",
                "fix",
                "goodput/s before -> after",
                "after / before (share of new requests)",
                f"recovered (>= {100 * RECOVERED:g} %)",
            ),
            hysteresis,
            note=f"Work x{FACTOR:g} during the trigger (capacity {CAPACITY_PER_S:g}/s -> "
            f"{CAPACITY_PER_S / FACTOR:g}/s); 'after' starts {RECOVERY_S:g} s after the trigger "
            "ends. The same system recovers from a short trigger or at a low load, and stays "
            "down from a long one at the normal load, unless a fix breaks the loop.",
        ),
    ),
)
