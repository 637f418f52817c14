"""circuit-breaker: one slow dependency takes down an unrelated endpoint, and what contains it.

The lab's verdicts over the typed numbers (`CircuitNumbers`), its plots, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from labs.circuit_breaker.exercise import EXERCISE
from labs.circuit_breaker.measure import CircuitNumbers, GappedLine, derive
from labs.circuit_breaker.scenario import (
    CASCADE_FACTOR,
    CLOSE_WITHIN_S,
    ENDPOINTS,
    FAST_MS,
    LEAD_S,
    MIN_REQUESTS,
    RESET_S,
    UNAFFECTED_FACTOR,
    VARIANTS,
)
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import load_before_fault
from labs.engine.model.spec import Check, Lab, Plot, Series

Results = Mapping[str, VariantResult]


def _numbers(results: Results, variant: str) -> CircuitNumbers:
    return results[variant].numbers(CircuitNumbers)


# --- checks ----------------------------------------------------------------------------------


def cascade_vs_contained(broken: str, fixed: str, factor: float) -> Check:
    """Under `broken` the unrelated endpoint's p99 during the fault is >= factor x fixed's."""

    def ratio(results: Results) -> float:
        bad, good = (_numbers(results, v).catalog.during_p99_ms for v in (broken, fixed))
        return bad / good if good else math.inf

    def evaluate(results: Results) -> tuple[bool, str]:
        bad, good = (_numbers(results, v).catalog.during for v in (broken, fixed))
        return bad.p99_ms >= factor * good.p99_ms and good.requests > 0, (
            f"{broken}: /catalog p99 during the fault {bad.p99_ms:,.0f} ms ({bad.requests} "
            f"requests) vs {fixed} {good.p99_ms:,.0f} ms ({good.requests}) "
            f"({ratio(results):.1f} x), expected >= {factor:g} x"
        )

    name = f"{broken}_catalog_cascades_{factor:g}x_{fixed}"
    return Check(name, evaluate, (broken, fixed), measure=ratio)


def unaffected(variant: str, factor: float, min_requests: int) -> Check:
    """`variant`'s /catalog p99 during the fault stays within factor x its own before it."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        before, during = n.catalog.before, n.catalog.during
        return n.catalog_unaffected(factor, min_requests), (
            f"{variant}: /catalog p99 during the fault {during.p99_ms:,.0f} ms ({during.requests}"
            f" requests, {during.errors} failed) vs {before.p99_ms:,.0f} ms before it "
            f"({before.requests}) ({n.catalog_ratio():.2f} x), expected 0 failed and <= "
            f"{factor:g} x over >= {min_requests} requests each"
        )

    def ratio(results: Results) -> float:
        return _numbers(results, variant).catalog_ratio()

    return Check(f"{variant}_catalog_unaffected", evaluate, (variant,), measure=ratio)


def fails_fast_while_open(variant: str, limit_ms: float, min_requests: int) -> Check:
    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.fails_fast(limit_ms, min_requests), (
            f"{variant}: /checkout while the circuit was open: {n.checkout_while_open} "
            f"requests, p99 {n.checkout_while_open_p99_ms:,.1f} ms, expected p99 < "
            f"{limit_ms:g} ms over >= {min_requests} requests"
        )

    return Check(
        f"{variant}_checkout_fails_fast_while_open",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).checkout_while_open_p99_ms,
    )


def cycles_and_closes(variant: str, within_s: float) -> Check:
    """closed -> open -> half-open -> closed, in that order, and closed again within
    `within_s` of payments recovering (and still closed at the end)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        shown = ", ".join(f"{k} {v}" for k, v in n.transition_counts.items()) or "none"
        return n.cycles_and_closes(within_s), (
            f"{variant}: transitions {shown}; closed again {n.closed_after_recovery_s:g} s "
            f"after payments recovered, final state {n.final_state}; expected "
            f"closed->open->half-open->closed and closed within {within_s:g} s (reset "
            f"timeout {RESET_S:g} + 5)"
        )

    return Check(
        f"{variant}_opens_probes_and_closes",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).closed_after_recovery_s,
    )


CHECKS = (
    load_before_fault(LEAD_S),
    cascade_vs_contained("naive", "breaker", CASCADE_FACTOR),
    # The bulkhead is what keeps /catalog unaffected: its twin is the variant without one.
    replace(
        unaffected("breaker", UNAFFECTED_FACTOR, min_requests=MIN_REQUESTS),
        twins={"breaker": "timeouts"},
    ),
    fails_fast_while_open("breaker", FAST_MS, min_requests=MIN_REQUESTS),
    cycles_and_closes("breaker", CLOSE_WITHIN_S),
)


# --- plots -----------------------------------------------------------------------------------


def _gaps_as_nan(lines: Mapping[str, GappedLine]) -> Series:
    return {
        label: (xs, [math.nan if y is None else y for y in ys]) for label, (xs, ys) in lines.items()
    }


def latency_lines(result: VariantResult) -> Series:
    return _gaps_as_nan(result.numbers(CircuitNumbers).latency_p99)


def in_flight_lines(result: VariantResult) -> Series:
    return result.numbers(CircuitNumbers).in_flight


def breaker_band(result: VariantResult) -> Series:
    band = result.numbers(CircuitNumbers).breaker_state
    return {"payments breaker": band} if band else {}


LAB = Lab(
    name="circuit-breaker",
    title="Cascading failure: timeouts, bulkheads and circuit breakers",
    question="How does one slow dependency take down an unrelated endpoint, and what contains it?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.catalog_p99_before_ms",
        "extra.catalog_p99_during_ms",
        "extra.checkout_p99_during_ms",
        "extra.checkout_while_open_p99_ms",
        "extra.peak_in_flight_payments",
        "extra.closed_after_recovery_s",
    ),
    sample_interval_s=0.25,
    derive=derive,
    exercise=EXERCISE,
    plots=(
        Plot(
            f"p99 latency per endpoint ({', '.join(ENDPOINTS)}), per 0.5 s by start time",
            "p99 (ms)",
            latency_lines,
        ),
        Plot("Gateway calls in flight, per downstream", "calls in flight", in_flight_lines),
        Plot("payments breaker: 0 closed, 1 half-open, 2 open", "state", breaker_band, kind="bar"),
    ),
)
