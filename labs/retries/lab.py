"""retries: backoff with and without jitter, retry storms across layers, retry budgets.

The lab's verdicts over the typed numbers (`RetriesNumbers`), its plots, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import load_before_fault, ratio_at_least, within
from labs.engine.model.spec import Check, Lab, Plot, Series
from labs.retries.exercise import EXERCISE
from labs.retries.measure import RetriesNumbers, api_arrivals, derive
from labs.retries.scenario import (
    BUCKET_S,
    BUDGET_MAX_AMPLIFICATION,
    CLIENT_ATTEMPTS,
    LAYER_GATEWAY_ATTEMPTS,
    LAYERS_LOW,
    LAYERS_PRODUCT,
    LEAD_S,
    LOST_SHARE,
    STORM_FACTOR,
    VARIANTS,
    WAVE_FACTOR,
)

Results = Mapping[str, VariantResult]


def _numbers(result: VariantResult) -> RetriesNumbers:
    return result.numbers(RetriesNumbers)


def outage_amplification(result: VariantResult) -> float:
    return _numbers(result).outage_amplification


def wave(result: VariantResult) -> float:
    return _numbers(result).max_bucket_after_outage


# --- checks ----------------------------------------------------------------------------------


def jitter_keeps_requests(better: str, worse: str, share: float) -> Check:
    """`better` succeeds at least as often as `worse`, and loses at most `share` of the
    requests `worse` loses after the outage (the ones the synchronized wave costs)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        b, w = _numbers(results[better]), _numbers(results[worse])
        lost_b, lost_w = b.failed_after_outage, w.failed_after_outage
        passed = b.success_rate >= w.success_rate and lost_w > 0 and lost_b <= share * lost_w
        return passed, (
            f"client success rate: {better} {b.success_rate:.3f} vs {worse} "
            f"{w.success_rate:.3f}, expected {better} >= {worse}; requests failed after the api "
            f"was back: {better} {lost_b:g} vs {worse} {lost_w:g}, expected {better} <= "
            f"{share:g} x {worse} = {share * lost_w:g}"
        )

    def lost_share(results: Results) -> float:
        lost_b = _numbers(results[better]).failed_after_outage
        lost_w = _numbers(results[worse]).failed_after_outage
        return lost_b / lost_w if lost_w else math.nan

    name = f"{better}_succeeds_where_{worse}_fails".replace("-", "_")
    return Check(name, evaluate, (better, worse), measure=lost_share)


def layers_multiply(variant: str, low: float, high: float) -> Check:
    """low <= the api attempts per user request that failed during the outage <= high,
    counted by the api itself (`attempts_while_alone`: the rounds of failed requests it saw
    alone, start to end)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results[variant])
        a = n.attempts_per_failed_request
        return low <= a <= high, (
            f"api attempts per user request that failed during the outage, counted by the api "
            f"in the {n.alone_at_api_s:g} s in which {n.alone_requests:g} of the "
            f"{n.failed_requests_in_outage:g} were in flight there, from start to end, and "
            f"nothing else was (-1: never alone): "
            f"{variant} {a:g}, expected {low:g} .. {high:g} ({CLIENT_ATTEMPTS} client x "
            f"{LAYER_GATEWAY_ATTEMPTS} gateway attempts = {LAYERS_PRODUCT}; "
            f"{low / LAYERS_PRODUCT:g} x = {low:g})"
        )

    return Check(
        "layers_multiply_attempts",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results[variant]).attempts_per_failed_request,
    )


CHECKS = (
    load_before_fault(LEAD_S, name="load_ran_before_the_incident"),
    # The fix is the backoff: without it full-jitter retries at once, as immediate does
    # (its default twin, exponential, backs off too: a proof by 2.7x vs 3x, too thin).
    replace(
        ratio_at_least(
            f"immediate_amplifies_{STORM_FACTOR:g}x_full_jitter",
            "immediate",
            "full-jitter",
            outage_amplification,
            STORM_FACTOR,
            "api attempts per client request during the outage",
        ),
        twins={"immediate": "", "full-jitter": "immediate"},
    ),
    ratio_at_least(
        f"exponential_waves_{WAVE_FACTOR:g}x_full_jitter",
        "exponential",
        "full-jitter",
        wave,
        WAVE_FACTOR,
        "largest 100 ms bucket of api attempts after the outage",
    ),
    jitter_keeps_requests("full-jitter", "exponential", LOST_SHARE),
    layers_multiply("layers", LAYERS_LOW, LAYERS_PRODUCT),
    within(
        "budget_caps_amplification",
        "budget",
        outage_amplification,
        0.0,
        BUDGET_MAX_AMPLIFICATION,
        "api attempts per client request during the outage",
    ),
)


# --- plots -----------------------------------------------------------------------------------


def arrivals_series(result: VariantResult) -> Series:
    """The api's attempts per 100 ms next to the users' requests per 100 ms: the gap
    between the two lines is the retries."""
    users = _numbers(result).client_requests_100ms
    return {
        "api attempts": api_arrivals(result),
        "user requests": (tuple(round(i * BUCKET_S, 3) for i in range(len(users))), users),
    }


def client_series(result: VariantResult) -> Series:
    xs = [b.t_s for b in result.series]
    ok = [sum(n for code, n in b.status.items() if 200 <= int(code) < 400) for b in result.series]
    failed = [b.requests - good for b, good in zip(result.series, ok, strict=True)]
    return {"succeeded": (xs, ok), "failed": (xs, failed)}


LAB = Lab(
    name="retries",
    title="Retries: backoff, jitter, retry storms and retry budgets",
    question="Why do retries turn a 5-second blip into a retry storm, and what stops it?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "extra.client_requests",
        "extra.amplification",
        "extra.outage_amplification",
        "extra.attempts_per_failed_request",
        "extra.max_bucket_after_outage",
        "extra.success_rate",
        "extra.recovery_s",
        "p99_ms",
    ),
    derive=derive,
    plots=(
        Plot("api attempts per 100 ms", "per 100 ms", arrivals_series, kind="step"),
        Plot("client requests per second", "requests / s", client_series, kind="line"),
    ),
    exercise=EXERCISE,
)
