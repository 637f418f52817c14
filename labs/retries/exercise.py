"""The retries exercise: the learner edits the gateway's retry policy (strategy, attempts,
waits, budget) in a TOML file, applied to the `exponential` variant; the grade holds the
run to `RetriesNumbers.fix_holds` with the scenario's thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.retries.measure import RetriesNumbers
from labs.retries.scenario import (
    API,
    COLD_CAPACITY,
    FINAL_MIN_RATE,
    FINAL_S,
    FIX_MAX_FAILED_AFTER,
    FIX_MIN_SUCCESS,
    LONGEST_WAIT_S,
    OUTAGE_S,
    STRATEGIES,
    gateway,
)


def settings(variant: Variant) -> str:
    """The exercise's editable file: the gateway's retry policy."""
    args = variant.services[-1].args
    budget = args.get("budget") == "on"
    return f"""\
# retries exercise. The api stalls, crashes for {OUTAGE_S:g} s and comes back cold (it can
# take {COLD_CAPACITY} requests at once). Users keep seeing failures after it is back. The
# gateway retries its calls to the api with the policy below. Change the values, then
# run `lab grade retries`.

[gateway.retry]
# One of: {", ".join(STRATEGIES)}.
# exponential waits min(cap_s, base_s * 2^n); full-jitter waits uniform(0, that);
# decorrelated-jitter waits min(cap_s, uniform(base_s, 3 * previous wait)).
strategy = "{args["retry-strategy"]}"
# Attempts per call, the first included (1 = never retry).
max_attempts = {args["retry-max-attempts"]}
# Seconds, each at most {LONGEST_WAIT_S:g}: a call that waits longer ends after the run.
base_s = {args["retry-base"]}
cap_s = {args["retry-cap"]}
# The whole call, retries included, gives up after this long.
deadline_s = {args["retry-deadline"]}

[gateway.retry_budget]
# Retries allowed as a share of the requests of the last 10 s (false = no budget).
enabled = {"true" if budget else "false"}
ratio = {args.get("budget-ratio", 0.1)}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    retry: dict[str, object] = {
        "retry-max-attempts": edits.whole(data, "gateway.retry.max_attempts", 1, 100),
        # Waits the run cannot show are refused: their requests would end after Locust
        # stops, never be recorded, and so never count as failures.
        **{
            arg: edits.number(data, f"gateway.retry.{key}", 0, LONGEST_WAIT_S, "seconds")
            for arg, key in (
                ("retry-base", "base_s"),
                ("retry-cap", "cap_s"),
                ("retry-deadline", "deadline_s"),
            )
        },
    }
    strategy = edits.choice(data, "gateway.retry.strategy", STRATEGIES)
    if edits.boolean(data, "gateway.retry_budget.enabled"):
        ratio = edits.number(data, "gateway.retry_budget.ratio", 0, 10, "retries per request")
        retry.update({"budget": "on", "budget-ratio": ratio, "budget-min-per-s": 1})
    return replace(base, services=(API, gateway(strategy, **retry)))


def retries_removed(variant: Variant) -> str | None:
    args = variant.services[-1].args
    if args["retry-strategy"] == "none" or args["retry-max-attempts"] == 1:
        return (
            "turning the gateway's retries off removes the storm and the waves, and every "
            f"request that meets the {OUTAGE_S:g} s outage, or a single dropped connection, "
            "fails. Keep the retries; change when they happen."
        )
    return None


def after_the_outage(result: VariantResult) -> str:
    n = result.numbers(RetriesNumbers)
    final = (
        f"in the last {FINAL_S:g} s {n.final_requests} requests, "
        f"{n.final_success_rate:.1%} succeeded, at {n.final_rate_share:.0%} of the rate before "
        "the incident"
        if n.final_requests
        else f"no request at all in the last {FINAL_S:g} s: the users are stuck in calls "
        "that end after the run"
    )
    return (
        f"{n.failed_after_outage} requests failed after the api was back (client success "
        f"rate {n.success_rate:.1%}, largest 100 ms wave of api attempts "
        f"{n.max_bucket_after_outage} vs {COLD_CAPACITY} it can take); {final}"
    )


def holds(result: VariantResult) -> bool:
    try:
        n = result.numbers(RetriesNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return n.fix_holds(FIX_MAX_FAILED_AFTER, FIX_MIN_SUCCESS, FINAL_MIN_RATE)


EXERCISE = Exercise(
    task=(
        f"The api crashes for {OUTAGE_S:g} s and comes back, and users keep seeing failures "
        "after it is back: the gateway's retries arrive together and knock the cold api "
        "over again. Look at when the gateway's retries happen."
    ),
    broken="exponential",
    fixed="full-jitter",
    settings=settings,
    apply=apply_settings,
    measure=after_the_outage,
    holds=holds,
    expected=f"<= {FIX_MAX_FAILED_AFTER} requests failed after the api was back and a client "
    f"success rate >= {FIX_MIN_SUCCESS:.0%}; in the last {FINAL_S:g} s of the run >= "
    f"{FIX_MIN_SUCCESS:.0%} of requests succeed, at >= {FINAL_MIN_RATE:.0%} of the rate before "
    "the incident",
    advice="every client that failed at the same instant waits the same backoff, so the "
    "retries come back as one wave",
    guards=(retries_removed,),
    hints=(
        "Plot the api's attempts per 100 ms (report.html): after the outage they come in "
        "spikes, not a steady stream. Why would hundreds of clients retry at the same moment?",
        "Exponential backoff gives every client that failed together the same sequence of "
        "waits. What would make each client's wait different?",
        'Set strategy = "full-jitter": each wait is uniform(0, min(cap, base * 2^n)), which '
        "spreads the same retries over the whole window.",
    ),
    grade_in_parallel=False,  # 150 users each: one at a time on 2 cores
)
