"""The rate-limit exercise: the learner chooses where the api's limiter keeps its counters
(and the contract: rate and burst) in a TOML file, applied to the `per-instance` variant;
the grade holds the run to the lab's own verdicts (`RateLimitNumbers`' predicates, with
the scenario's thresholds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.stats import number
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.rate_limit.measure import RateLimitNumbers
from labs.rate_limit.scenario import (
    APP_BURST,
    HOLD_TOLERANCE,
    LIMIT_RPS,
    LIMITERS,
    QUIET_MIN_PCT,
    REPLICAS,
    api,
)


def _api_args(variant: Variant) -> Mapping[str, object]:
    return next(s for s in variant.services if s.name == "api").args


def settings(variant: Variant) -> str:
    """The exercise's editable file: where the api's limiter keeps its counters."""
    args = _api_args(variant)
    return f"""\
# rate-limit exercise. Every tenant is promised {LIMIT_RPS} requests/s, yet the noisy
# tenant gets far more than that through. The api runs as {REPLICAS} replicas behind
# nginx's round robin, and each replica limits what it sees. Change the values below,
# then run `lab grade rate-limit`.

[api.ratelimit]
# Where the limiter keeps its counters: "off" (no limit), "local" (each replica's own
# memory) or "redis" (one Redis shared by all {REPLICAS} replicas).
store = "{args.get("ratelimit", "off")}"
# The tenants' contract: requests per second, and how many may come at once.
rate_per_s = {args.get("ratelimit-rate", LIMIT_RPS)}
burst = {args.get("ratelimit-burst", APP_BURST)}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    store = edits.choice(data, "api.ratelimit.store", LIMITERS)
    rate = edits.number(data, "api.ratelimit.rate_per_s", 0, 10_000, "requests per second")
    burst = edits.whole(data, "api.ratelimit.burst", 1, 1000)
    parts = ("redis",) if store == "redis" else ()
    return replace(base, services=api(store, rate, burst), parts=parts)


# --- guards: edits that remove the thing under test -----------------------------------------


def contract_changed(variant: Variant) -> str | None:
    rate = number(_api_args(variant).get("ratelimit-rate", LIMIT_RPS))
    if rate != LIMIT_RPS:
        return (
            f"rate_per_s = {rate:g} changes the tenants' contract of {LIMIT_RPS}/s. Dividing "
            f"the limit by the {REPLICAS} replicas holds only while round robin splits every "
            "tenant evenly and the replica count never changes. Keep the rate; make the "
            "replicas count together."
        )
    return None


# --- grading ---------------------------------------------------------------------------------


def noisy_vs_limit(result: VariantResult) -> str:
    n = result.numbers(RateLimitNumbers)
    noisy = n.tenants.noisy
    return (
        f"noisy accepted {noisy.accepted_rps:.1f}/s of {noisy.offered_rps:.0f}/s offered "
        f"({n.times_limit:.2f} x the {LIMIT_RPS}/s limit); quiet "
        f"{n.tenants.quiet.success_pct:.1f} % accepted"
    )


def fix_holds(result: VariantResult) -> bool:
    """The same verdicts as the lab's own checks, on the learner's run alone."""
    try:
        n = result.numbers(RateLimitNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return n.holds_limit(HOLD_TOLERANCE) and n.tenants.quiet.success_pct >= QUIET_MIN_PCT


EXERCISE = Exercise(
    task=(
        f"Every tenant is promised {LIMIT_RPS} requests/s, and each api replica enforces "
        f"it, yet a noisy tenant gets about {REPLICAS} times that through nginx. Look at "
        "where each replica keeps the count of what a tenant has used."
    ),
    broken="per-instance",
    fixed="redis",
    settings=settings,
    apply=apply_settings,
    measure=noisy_vs_limit,
    holds=fix_holds,
    expected=f"noisy within {1 - HOLD_TOLERANCE:g}-{1 + HOLD_TOLERANCE:g} x the limit, "
    f"quiet >= {QUIET_MIN_PCT:g} % accepted",
    advice=f"each of the {REPLICAS} replicas admits {LIMIT_RPS}/s on its own; the limit "
    "must be counted in one place that every replica sees",
    guards=(contract_changed,),
    hints=(
        f"Round robin sends each replica a third of the noisy tenant's requests, and each "
        f"replica lets {LIMIT_RPS}/s through. How many does the tenant get in all?",
        "A limit behind a load balancer must be counted where every replica sees the same "
        "count. Which of the stores is shared?",
        'Set store = "redis": every replica runs the same GCRA check, atomically, on one '
        "key per tenant in the shared Redis.",
    ),
)
