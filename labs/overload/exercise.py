"""overload's exercise: the clients' retry policy and the api's queue, as a learner edits
them, graded on whether goodput comes back after the same trigger at the same rate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.overload.measure import OverloadNumbers
from labs.overload.scenario import (
    ATTEMPTS,
    FACTOR,
    LONG_S,
    MAX_TRIGGER_S,
    MIN_BEFORE,
    RATE,
    RECOVERED,
    RECOVERY_S,
    TIMEOUT_S,
    TRIGGER_AT_S,
    api,
    load,
    trigger,
)


def _api_args(variant: Variant) -> Mapping[str, object]:
    return variant.services[0].args


def _trigger(variant: Variant) -> tuple[float, float]:
    """(seconds, factor) of the variant's trigger."""
    start, end = variant.faults[0], variant.faults[-1]
    factor = start.settings.get("work_factor", 0)
    return end.at_s - start.at_s, float(factor) if isinstance(factor, int | float) else 0.0


def _on(value: bool) -> str:
    return "true" if value else "false"


def settings(variant: Variant) -> str:
    """The exercise's editable file: the clients' retries and the api's queue."""
    env, args = variant.load.env, _api_args(variant)
    seconds, factor = _trigger(variant)
    window = env["LAB_THROTTLE_WINDOW_S"]
    return f"""\
# overload exercise. For {seconds:g} seconds the api's work got {factor:g} times slower,
# then it was normal again, and yet nothing succeeds any more: the api is busy all the
# time, the clients time out and retry, and it never comes back. Change the clients'
# retry policy or the api's queue below, then run `lab grade overload`.

[load]
# New requests per second, arriving whatever the api does (the users: not yours).
rate_per_s = {env["LAB_RATE"]}

[trigger]
# The spike (not yours either): every request's work x factor for this many seconds.
factor = {factor:g}
seconds = {seconds:g}

[client]
# One attempt's timeout (the callers' patience), and attempts per request, the first
# included (1 = never retry).
timeout_s = {env["LAB_CLIENT_TIMEOUT_S"]}
attempts = {env["LAB_CLIENT_ATTEMPTS"]}
# gRPC retry throttling: 10 tokens, a failure takes 1, a success gives 0.1 back, and a
# retry is sent only while more than 5 are left.
retry_budget = {_on(env["LAB_RETRY_BUDGET"] == "on")}
# SRE adaptive throttling: over the last {window} s, reject a request locally with
# probability (requests - {env["LAB_THROTTLE_K"]} x accepts) / (requests + 1).
throttle = {_on(env["LAB_THROTTLE"] == "on")}

[api]
# The api's {args["workers"]} workers take requests from a queue: "fifo" (oldest first)
# or "lifo" (newest first).
queue = "{args["queue"]}"
# Requests that may wait; one more gets 503 at once (0 = no limit).
queue_limit = {args.get("queue-limit", 0)}
# A request that waited longer than this gets 503 instead of a worker (0 = no limit).
max_queue_ms = {args.get("max-queue-ms", 0)}
# Drop a request whose client's timeout (X-Timeout-Ms) passed while it waited.
shed_expired = {_on(args.get("shed-expired") == "on")}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    rate = edits.number(data, "load.rate_per_s", 0, 1000, "requests per second")
    factor = edits.number(data, "trigger.factor", 1, 100)
    seconds = edits.number(data, "trigger.seconds", 0, MAX_TRIGGER_S, "seconds")
    timeout = edits.number(data, "client.timeout_s", 0, 30, "seconds")
    attempts = edits.whole(data, "client.attempts", 1, 10)
    budget = edits.boolean(data, "client.retry_budget")
    throttle = edits.boolean(data, "client.throttle")
    queue = edits.choice(data, "api.queue", ("fifo", "lifo"))
    queue_limit = edits.whole(data, "api.queue_limit", 0, 100_000)
    max_queue_ms = edits.whole(data, "api.max_queue_ms", 0, 60_000)
    shed_expired = edits.boolean(data, "api.shed_expired")
    client = {
        "LAB_CLIENT_TIMEOUT_S": f"{timeout:g}",
        "LAB_RETRY_BUDGET": "on" if budget else "off",
        "LAB_THROTTLE": "on" if throttle else "off",
    }
    return replace(
        base,
        services=api(
            queue=queue,
            **{
                "queue-limit": queue_limit,
                "max-queue-ms": max_queue_ms,
                "shed-expired": "on" if shed_expired else "off",
            },
        ),
        load=load(rate, attempts, **client),
        faults=trigger(seconds, factor),
    )


# --- guards: edits that remove the thing under test -----------------------------------------


def load_lowered(variant: Variant) -> str | None:
    rate = float(variant.load.env["LAB_RATE"])
    if rate < RATE:
        return (
            f"load.rate_per_s = {rate:g} asks the users to come less often. At a low enough "
            "rate the same system recovers (that is the hysteresis: the low-load variant), "
            f"but the users do not wait for you. Keep {RATE:g} requests per second."
        )
    return None


def trigger_weakened(variant: Variant) -> str | None:
    seconds, factor = _trigger(variant)
    if seconds < LONG_S or factor < FACTOR:
        return (
            f"a trigger of x{factor:g} for {seconds:g} s is a smaller spike: the same system "
            "survives a short one (the short-trigger variant), but nobody chooses how long "
            f"the next one lasts. Keep x{FACTOR:g} for {LONG_S:g} s; make the system recover "
            "from it."
        )
    return None


def retries_removed(variant: Variant) -> str | None:
    if int(variant.load.env["LAB_CLIENT_ATTEMPTS"]) < 2:
        return (
            "attempts = 1 turns every retry off. That stops the loop, and with it the "
            "recovery of every request a retry would have saved on a good day. Keep the "
            f"retries ({ATTEMPTS} attempts); make them stop when they cannot help."
        )
    return None


def patience_changed(variant: Variant) -> str | None:
    timeout = float(variant.load.env["LAB_CLIENT_TIMEOUT_S"])
    if timeout != TIMEOUT_S:
        return (
            f"client.timeout_s = {timeout:g} changes how long the callers wait; they wait "
            f"{TIMEOUT_S:g} s. A longer timeout only takes a longer trigger to tip the "
            "system over; a shorter one fails good requests. Keep it."
        )
    return None


# --- grading ---------------------------------------------------------------------------------


def goodput(result: VariantResult) -> str:
    n = result.numbers(OverloadNumbers)
    return (
        f"{n.goodput_summary()}; the api finishing {n.throughput_after_per_s:g}/s, "
        f"{n.api_late:g} answers too late"
    )


def holds(result: VariantResult) -> bool:
    try:
        n = result.numbers(OverloadNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return n.trigger_start_s >= TRIGGER_AT_S / 2 and n.recovers(RECOVERED, MIN_BEFORE)


EXERCISE = Exercise(
    task=(
        "A spike made the api three times slower for five seconds. The spike is long gone, "
        "the api is busy at full capacity, and still almost nothing succeeds: every "
        "request times out. Look at what the clients do after a timeout, and at what the "
        "api does with a request whose caller has already given up."
    ),
    broken="broken",
    fixed="retry-budget",
    settings=settings,
    apply=apply_settings,
    measure=goodput,
    holds=holds,
    expected=f"goodput from {RECOVERY_S:g} s after the trigger >= {100 * RECOVERED:g} % of "
    "before it",
    advice="the overload feeds itself: cap what the clients add when things fail, or let "
    "the api drop what it cannot finish in time",
    guards=(load_lowered, trigger_weakened, retries_removed, patience_changed),
    hints=(
        "After the spike the api finishes 100 requests a second, as many as before. Which "
        "requests? Compare the api's 'late' count with its completions.",
        "Every timed-out request is sent again, up to 4 times: the api is offered 4 x 50 = "
        "200 attempts a second, twice what it can do, and its queue never empties. Either "
        "the clients stop multiplying the load when most attempts fail, or the api stops "
        "queueing what it cannot serve in time.",
        "Turn client.retry_budget (or client.throttle) on, or give the api a queue_limit "
        "small enough that a queued request still finishes inside the clients' timeout "
        "(10 workers x 100 ms: 40 waiting = 0.4 s).",
    ),
    grade_in_parallel=False,
)
