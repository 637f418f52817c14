"""The circuit-breaker exercise: the learner edits the gateway's policy for its downstreams
(timeouts, connection pools, breaker) in a TOML file, applied to the `naive` variant; the
grade holds the run to the lab's own verdicts (`CircuitNumbers`' predicates, with the
scenario's thresholds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.circuit_breaker.measure import CircuitNumbers
from labs.circuit_breaker.scenario import (
    BULKHEAD,
    CLOSE_WITHIN_S,
    FAIL_MAX,
    FAST_MS,
    MIN_REQUESTS,
    POOL_CONNECTIONS,
    RESET_S,
    UNAFFECTED_FACTOR,
    services,
)
from labs.engine.analysis.metrics import VariantResult, is_success
from labs.engine.model.spec import Exercise, Variant

TIMEOUT_KEYS = {
    "connect_s": "connect-timeout",
    "read_s": "read-timeout",
    "attempt_s": "attempt-timeout",
    "deadline_s": "retry-deadline",
}
MIN_TIMEOUT_S = {"connect_s": 0.05, "read_s": 0.2, "attempt_s": 0.2, "deadline_s": 0.2}
"""Shorter timeouts fail healthy calls too (the catalog's work is 50 ms)."""
MIN_BULKHEAD = 5
MAX_RESET_S = 10.0
FINAL_S = 3.0
"""/checkout must succeed again in the last seconds of the run: payments is healthy by then."""


def _gateway_args(variant: Variant) -> Mapping[str, object]:
    return next(s for s in variant.services if s.name == "gateway").args


def _gateway_number(variant: Variant, option: str, default: float = 0) -> float:
    """A number on the gateway's command line (as the lab or `apply_settings` set it)."""
    value = _gateway_args(variant).get(option, default)
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"gateway option {option} is not a number: {value!r}")


def settings(variant: Variant) -> str:
    """The exercise's editable file: the gateway's policy for its downstreams."""
    args = _gateway_args(variant)
    timeouts = "\n".join(f"{key} = {args[option]}" for key, option in TIMEOUT_KEYS.items())
    enabled = "true" if args.get("breaker") == "on" else "false"
    return f"""\
# circuit-breaker exercise. When payments gets slow, /catalog (which never calls
# payments) hangs too, and /checkout takes seconds to fail. Change the gateway's policy
# for its downstreams below, then run `lab grade circuit-breaker`.

[timeouts]
# Seconds, 0 = none. connect_s includes the wait for a free connection in the pool;
# read_s is the longest silence while reading; attempt_s one attempt start to end;
# deadline_s the whole request.
{timeouts}

[connections]
# "shared": one pool for both downstreams; "per-downstream": a pool each.
pool = "{args["pool"]}"
# Connections in the pool (each pool's, with "per-downstream").
max_connections = {args["max-connections"]}
# Bulkhead: calls in flight per downstream; the next one is refused at once
# (0 = no bulkhead; needs pool = "per-downstream").
max_in_flight = {args.get("max-in-flight", 0)}

[breaker]
enabled = {enabled}
# Failures in a row that open the circuit.
fail_max = {args.get("breaker-fail-max", FAIL_MAX)}
# Seconds the circuit stays open before one trial call.
reset_timeout_s = {args.get("breaker-reset-timeout", RESET_S)}
"""


def _number(section: Mapping[str, Any], key: str) -> float:
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _whole(section: Mapping[str, Any], key: str) -> int:
    value = _number(section, key)
    if value != int(value):
        raise ValueError(f"{key} must be a whole number")
    return int(value)


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    timeouts, connections, breaker = data["timeouts"], data["connections"], data["breaker"]
    seconds = {option: _number(timeouts, key) for key, option in TIMEOUT_KEYS.items()}
    if connections["pool"] not in ("shared", "per-downstream"):
        raise ValueError('connections.pool must be "shared" or "per-downstream"')
    if not isinstance(breaker["enabled"], bool):
        raise ValueError("breaker.enabled must be true or false")
    max_connections = _whole(connections, "max_connections")
    max_in_flight = _whole(connections, "max_in_flight")
    fail_max = _whole(breaker, "fail_max")
    reset_s = _number(breaker, "reset_timeout_s")
    if min(max_connections, max_in_flight, fail_max) < 0:
        raise ValueError("max_connections, max_in_flight and fail_max must be >= 0")
    if any(s < 0 for s in (*seconds.values(), reset_s)):
        raise ValueError("timeouts and reset_timeout_s must be >= 0 seconds")
    if max_in_flight and connections["pool"] == "shared":
        raise ValueError('a bulkhead (max_in_flight > 0) needs pool = "per-downstream"')
    if breaker["enabled"] and fail_max == 0:
        raise ValueError("breaker.fail_max must be >= 1")
    args: dict[str, object] = {
        **seconds,
        "pool": connections["pool"],
        "max-connections": max_connections,
        "max-in-flight": max_in_flight,
        "breaker": "on" if breaker["enabled"] else "off",
        "breaker-fail-max": fail_max,
        "breaker-reset-timeout": reset_s,
        "breaker-half-open-calls": 1,
    }
    return replace(base, services=services(args))


# --- guards: edits that remove the thing under test -----------------------------------------


def timeouts_too_short(variant: Variant) -> str | None:
    for key, option in TIMEOUT_KEYS.items():
        value = _gateway_number(variant, option)
        if 0 < value < MIN_TIMEOUT_S[key]:
            return (
                f"timeouts.{key} = {value:g} s fails healthy calls too (the catalog takes 50 ms): "
                "that removes the calls instead of bounding them. Use at least "
                f"{MIN_TIMEOUT_S[key]:g} s."
            )
    return None


def pool_unlimited(variant: Variant) -> str | None:
    """max_connections = 0 is aiohttp's TCPConnector(limit=0): no limit. The shared pool
    (or a downstream's own) then opens a connection per call, so a slow payments never
    uses it up and /catalog never waits for one: the contention under test is gone."""
    if int(_gateway_number(variant, "max-connections")) == 0:
        return (
            "max_connections = 0 means no limit (aiohttp's TCPConnector(limit=0) opens a "
            "connection for every call): there is no pool left for a slow payments to use "
            "up, which removes the bulkhead under test instead of building one. Give the "
            f"pool a size (the broken settings' {POOL_CONNECTIONS}, or {BULKHEAD} per "
            "downstream)."
        )
    return None


def bulkhead_too_small(variant: Variant) -> str | None:
    in_flight = int(_gateway_number(variant, "max-in-flight"))
    if 0 < in_flight < MIN_BULKHEAD:
        return (
            f"max_in_flight = {in_flight} refuses most of the checkouts even while payments "
            f"is healthy: that removes the payments calls instead of containing them. Use at "
            f"least {MIN_BULKHEAD}."
        )
    return None


def breaker_never_closes(variant: Variant) -> str | None:
    args = _gateway_args(variant)
    reset_s = _gateway_number(variant, "breaker-reset-timeout", RESET_S)
    if args.get("breaker") == "on" and reset_s > MAX_RESET_S:
        return (
            f"a reset timeout of {args['breaker-reset-timeout']} s keeps the circuit open long "
            "after payments recovers: a breaker that never closes cuts payments off. Use at "
            f"most {MAX_RESET_S:g} s."
        )
    return None


# --- grading ---------------------------------------------------------------------------------


def catalog_symptom(result: VariantResult) -> str:
    n = result.numbers(CircuitNumbers)
    before, during = n.catalog.before_p99_ms, n.catalog.during_p99_ms
    return (
        f"/catalog p99 {during:,.0f} ms during the payments slowdown vs {before:,.0f} ms "
        f"before ({n.catalog_ratio():.1f} x), {n.catalog.errors:g} catalog errors; /checkout "
        f"while the circuit was open: {n.checkout_while_open:g} requests, p99 "
        f"{n.checkout_while_open_p99_ms:g} ms"
    )


def _checkout_recovered(result: VariantResult) -> bool:
    end = max((b.t_s for b in result.series if b.requests), default=0.0)
    last = [
        r
        for r in result.raw_requests
        if r.name == "/checkout" and r.start_s - result.origin_s >= end - FINAL_S
    ]
    return bool(last) and all(is_success(r.status) for r in last)


def fix_holds(result: VariantResult) -> bool:
    """The same verdicts as the lab's own checks, on the learner's run alone."""
    try:
        n = result.numbers(CircuitNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return (
        n.catalog_unaffected(UNAFFECTED_FACTOR, MIN_REQUESTS)
        and n.catalog.errors == 0
        and n.fails_fast(FAST_MS, MIN_REQUESTS)
        and n.cycles_and_closes(CLOSE_WITHIN_S)
        and _checkout_recovered(result)
    )


EXERCISE = Exercise(
    task=(
        "Payments gets slow for 6 seconds and the whole shop goes with it: /catalog, which "
        "never calls payments, takes seconds to answer, and /checkout hangs instead of "
        "failing. Look at how long the gateway waits for a downstream, what its two "
        "downstreams share, and whether it keeps calling one that is obviously down."
    ),
    broken="naive",
    fixed="breaker",
    settings=settings,
    apply=apply_settings,
    measure=catalog_symptom,
    holds=fix_holds,
    expected=(
        f"/catalog p99 during the slowdown <= {UNAFFECTED_FACTOR:g} x before and no catalog "
        f"errors; /checkout p99 < {FAST_MS:g} ms while the circuit is open; the circuit "
        f"closes again within {CLOSE_WITHIN_S:g} s of payments recovering and checkouts "
        "succeed at the end"
    ),
    advice="bound every wait, give each downstream its own pool, and stop calling payments "
    "while it keeps failing",
    guards=(timeouts_too_short, pool_unlimited, bulkhead_too_small, breaker_never_closes),
    hints=(
        "With no timeout, a call to a slow payments holds its connection for 5 s. What else "
        "needs those connections?",
        "Both downstreams draw from one pool of 30. Set timeouts, then give each downstream "
        'its own pool and a cap on calls in flight (pool = "per-downstream", '
        "max_in_flight).",
        "Now /checkout still waits out a timeout per request. Turn the breaker on: after "
        "fail_max failures in a row it answers 503 at once, and tries one call every "
        "reset_timeout_s.",
    ),
    grade_in_parallel=False,
)
