"""rate-limit: what nginx, a per-instance bucket and a shared Redis limiter let through.

The lab's verdicts over the typed numbers (`RateLimitNumbers`), its plot, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import within
from labs.engine.model.spec import Check, Lab, Plot, Series
from labs.rate_limit.exercise import EXERCISE
from labs.rate_limit.measure import BURST_WINDOW_S, HeaderCounts, RateLimitNumbers, derive, summed
from labs.rate_limit.scenario import (
    FAIL_OPEN_FACTOR,
    FAIL_OPEN_TOLERANCE,
    HOLD_TOLERANCE,
    LIMIT_RPS,
    LIMITED,
    NGINX_BURST,
    PER_INSTANCE_FACTOR,
    QUIET_MIN_PCT,
    QUIET_MIN_REQUESTS,
    VARIANTS,
)

Results = Mapping[str, VariantResult]
TIMES_LIMIT = f"noisy tenant's accepted/s in multiples of the {LIMIT_RPS}/s limit"


def _numbers(results: Results, variant: str) -> RateLimitNumbers:
    return results[variant].numbers(RateLimitNumbers)


def _times_limit(result: VariantResult) -> float:
    return result.numbers(RateLimitNumbers).times_limit


# --- checks ----------------------------------------------------------------------------------


def at_least_times_limit(variant: str, factor: float) -> Check:
    name = f"{variant}_lets_through_{factor:g}x_the_limit"
    return within(name, variant, _times_limit, factor, math.inf, TIMES_LIMIT)


def holds_the_limit(variant: str, tolerance: float) -> Check:
    name = f"{variant}_holds_the_limit"
    return within(name, variant, _times_limit, 1 - tolerance, 1 + tolerance, TIMES_LIMIT)


def burst_at_once(variant: str, burst: int, contrast: str) -> Check:
    """The burst is admitted at once: >= burst accepted in the first BURST_WINDOW_S."""

    def accepted(results: Results, name: str) -> int:
        return _numbers(results, name).tenants.noisy.accepted_first_window

    def evaluate(results: Results) -> tuple[bool, str]:
        n, other = accepted(results, variant), accepted(results, contrast)
        possible = burst + 1 + LIMIT_RPS * BURST_WINDOW_S
        return n >= burst, (
            f"{variant}: noisy got {n} accepted in its first {BURST_WINDOW_S:g} s "
            f"(burst {burst} + 1 + {LIMIT_RPS}/s x {BURST_WINDOW_S:g} s = {possible:g} possible; "
            f"{contrast} without burst: {other}), expected >= {burst}"
        )

    return Check(
        f"{variant}_accepts_the_burst_at_once",
        evaluate,
        (variant, contrast),
        measure=lambda results: accepted(results, variant),
    )


def quiet_unharmed(variant: str, min_pct: float, min_requests: int) -> Check:
    """The quiet tenant is not hurt by the noisy one (under 100 requests, none may fail)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        q = n.tenants.quiet
        return n.quiet_unharmed(min_pct, min_requests), (
            f"{variant}: quiet got {q.accepted} of {q.requests} accepted "
            f"({q.success_pct:.1f} %, {q.limited} x 429, {q.errors} errors, "
            f"p99 {q.p99_ms:.1f} ms), expected >= {min_pct:g} % over >= {min_requests}"
        )

    return Check(
        f"{variant}_quiet_tenant_gets_through",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).tenants.quiet.success_pct,
    )


def fails_open(variant: str, tolerance: float, factor: float) -> Check:
    """Before Redis stops the limit holds; after, the limiter admits everything."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        before, after = n.noisy_accepted_rps_before, n.noisy_accepted_rps_after
        if before is None or after is None:
            shown = "no stop fault was applied"
        else:
            shown = (
                f"noisy accepted {before:.1f}/s before Redis stopped at {n.fault_at_s} s, "
                f"{after:.1f}/s after"
            )
        return n.fails_open(tolerance, factor), (
            f"{variant}: {shown}; expected {1 - tolerance:g}-{1 + tolerance:g} x then "
            f">= {factor:g} x the {LIMIT_RPS}/s limit"
        )

    return Check(
        f"{variant}_fails_open",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).after_times_limit,
    )


def _headers(results: Results) -> dict[str, HeaderCounts]:
    return {name: r.numbers(RateLimitNumbers).headers() for name, r in results.items()}


def every_429_carries_retry_after() -> Check:
    def evaluate(results: Results) -> tuple[bool, str]:
        seen = _headers(results)
        total = summed(seen.values())
        shown = ", ".join(
            f"{n} {h.retry_after}/{h.responses}" for n, h in seen.items() if h.responses
        )
        n = total.responses
        passed = n > 0 and total.retry_after == n and total.problem_json == n
        return passed, (
            f"{total.retry_after} of {n} 429s carried Retry-After and {total.problem_json} "
            f"were problem+json ({shown or 'no 429s'}), expected all of them, > 0"
        )

    def compliant_pct(results: Results) -> float:
        total = summed(_headers(results).values())
        both = min(total.retry_after, total.problem_json)
        return 100 * both / total.responses if total.responses else math.nan

    return Check(
        "every_429_carries_retry_after",
        evaluate,
        (),
        not_applicable="a contract every limiter keeps (Retry-After and problem+json on "
        "each 429), not a fix",
        measure=compliant_pct,
    )


CHECKS = (
    holds_the_limit("nginx", HOLD_TOLERANCE),
    burst_at_once("nginx-burst", NGINX_BURST, contrast="nginx"),
    at_least_times_limit("per-instance", PER_INSTANCE_FACTOR),
    holds_the_limit("redis", HOLD_TOLERANCE),
    fails_open("redis-down", FAIL_OPEN_TOLERANCE, FAIL_OPEN_FACTOR),
    # A limit per tenant is what spares the quiet one: its twin is one limit for all.
    *(
        replace(quiet_unharmed(v, QUIET_MIN_PCT, QUIET_MIN_REQUESTS), twins={v: "global"})
        for v in LIMITED
    ),
    every_429_carries_retry_after(),
)


# --- plots -----------------------------------------------------------------------------------


def accepted_per_second(result: VariantResult) -> Series:
    tenants = result.numbers(RateLimitNumbers).tenants
    return {
        f"{name} accepted/s": (tuple(range(len(t.accepted_per_s))), t.accepted_per_s)
        for name, t in (("noisy", tenants.noisy), ("quiet", tenants.quiet))
    }


LAB = Lab(
    name="rate-limit",
    title="Rate limiting: nginx, the application, and a shared limit across replicas",
    question="What does each kind of rate limiter really let through behind a load balancer?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "extra.noisy_offered_rps",
        "extra.noisy_accepted_rps",
        "extra.accepted_over_limit",
        "status.429",
        "extra.quiet_success_pct",
        "extra.quiet_p99_ms",
    ),
    derive=derive,
    plots=(Plot("Accepted requests per second, by tenant", "accepted/s", accepted_per_second),),
    demo=False,
    exercise=EXERCISE,
)
