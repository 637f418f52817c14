"""circuit-breaker: one slow dependency takes down an unrelated endpoint, and what contains it.

clients (Locust) -> nginx -> gateway -> payments api (GET /checkout)
                                     -> catalog api  (GET /catalog)

Steady users on both endpoints; mid-run every payments request takes SLOW_MS, then
payments recovers. The catalog is never touched, yet under `naive` (no timeouts, one
connection pool shared by both downstreams, no breaker) /catalog waits seconds: the slow
payments calls hold every connection of the shared pool. Then, one layer at a time:
timeouts free the connections sooner (and turn the wait into errors), a bulkhead gives
each downstream its own pool and in-flight cap (catalog is untouched), and a circuit
breaker stops calling payments at all while it is down (checkout fails in milliseconds,
not seconds) and closes again once a trial call succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.circuit_breaker.measure import ENDPOINTS, derive
from labs.engine.metrics import VariantResult
from labs.engine.spec import (
    Check,
    Exercise,
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    Plot,
    Series,
    ServiceSpec,
    Upstream,
    Variant,
)

CATALOG_LATENCY_MS = 50
"""The catalog's own work per request: its p99 sits well above the machine's noise."""
SLOW_MS = 5000
"""payments in slow mode: every request takes 5 s (0 ms otherwise)."""
FAULT_AT_S, RECOVER_AT_S = 6.0, 12.0
"""Seconds after Locust starts (which itself takes 1-3 s to send the first request)."""
DURATION_S = 17
CHECKOUT_USERS, CATALOG_USERS = 40, 20
THINK_S = (0.4, 0.6)

POOL_CONNECTIONS = 30
"""The gateway's connections: one pool of 30 shared by both downstreams (naive,
timeouts), or the same 30 split, 15 per downstream (bulkhead, breaker). 40 checkout
users can hold more than 30 slow calls."""
BULKHEAD = 15
CONNECT_S, READ_S, ATTEMPT_S, DEADLINE_S = 0.25, 1.0, 1.5, 2.0
FAIL_MAX, RESET_S = 5, 2.0
CLOSE_WITHIN_S = RESET_S + 5
"""After payments recovers the breaker must be closed within this (issue's bound)."""

FAULTS = (
    FaultStep(FAULT_AT_S, "payments", {"latency_ms": SLOW_MS}),
    FaultStep(RECOVER_AT_S, "payments", {"latency_ms": 0}),
)
PAYMENTS = ServiceSpec("payments", module="services.api", args={"seed": 1})
CATALOG = ServiceSpec(
    "catalog", module="services.api", args={"latency-ms": CATALOG_LATENCY_MS, "seed": 2}
)
NO_TIMEOUTS: dict[str, object] = {
    "connect-timeout": 0,
    "read-timeout": 0,
    "attempt-timeout": 0,
    "retry-deadline": 0,
}
TIMEOUTS: dict[str, object] = {
    "connect-timeout": CONNECT_S,
    "read-timeout": READ_S,
    "attempt-timeout": ATTEMPT_S,
    "retry-deadline": DEADLINE_S,
}
SHARED_POOL: dict[str, object] = {"pool": "shared", "max-connections": POOL_CONNECTIONS}
OWN_POOLS: dict[str, object] = {
    "pool": "per-downstream",
    "max-connections": BULKHEAD,
    "max-in-flight": BULKHEAD,
}
BREAKER: dict[str, object] = {
    "breaker": "on",
    "breaker-fail-max": FAIL_MAX,
    "breaker-reset-timeout": RESET_S,
    "breaker-half-open-calls": 1,
}


GATEWAY_DEFAULTS: dict[str, object] = {
    "retry-strategy": "none",
    "seed": 7,
    **NO_TIMEOUTS,
    "pool": "per-downstream",
    "max-connections": 100,
    "max-in-flight": 0,
    "breaker": "off",
    "breaker-fail-max": FAIL_MAX,
    "breaker-reset-timeout": RESET_S,
    "breaker-half-open-calls": 1,
}
"""Every gateway option the lab (and the exercise's file) sets, so each variant's command
line says everything; the variants differ by the parts above."""


def gateway(*settings: Mapping[str, object]) -> ServiceSpec:
    args = dict(GATEWAY_DEFAULTS)
    for part in settings:
        args.update(part)
    return ServiceSpec(
        "gateway",
        module="services.gateway",
        args=args,
        depends_on={"payments-url": "payments", "catalog-url": "catalog"},
    )


def services(*settings: Mapping[str, object]) -> tuple[ServiceSpec, ...]:
    return (PAYMENTS, CATALOG, gateway(*settings))


LOAD = LoadSpec(
    locustfile="endpoints.py",
    users=CHECKOUT_USERS + CATALOG_USERS,
    spawn_rate=CHECKOUT_USERS + CATALOG_USERS,
    duration_s=DURATION_S,
    env={
        "LAB_ENDPOINTS": f"/checkout:{CHECKOUT_USERS},/catalog:{CATALOG_USERS}",
        "LAB_THINK_MIN_S": str(THINK_S[0]),
        "LAB_THINK_MAX_S": str(THINK_S[1]),
    },
)

NAIVE = Variant(
    name="naive",
    summary=f"no timeouts, one pool of {POOL_CONNECTIONS} connections for both, no breaker",
    nginx=NginxSpec(upstream=Upstream(keepalive=32), backend="gateway"),
    services=services(NO_TIMEOUTS, SHARED_POOL),
    load=LOAD,
    faults=FAULTS,
    twin="breaker",
)
TIMEOUTS_VARIANT = replace(
    NAIVE,
    name="timeouts",
    summary=f"connect {CONNECT_S:g} s, read {READ_S:g} s, attempt {ATTEMPT_S:g} s, deadline "
    f"{DEADLINE_S:g} s; still one shared pool",
    services=services(TIMEOUTS, SHARED_POOL),
    twin="",
)
BULKHEAD_VARIANT = replace(
    NAIVE,
    name="bulkhead",
    summary=f"timeouts + a pool of {BULKHEAD} and {BULKHEAD} calls in flight per downstream",
    services=services(TIMEOUTS, OWN_POOLS),
    twin="",
)
BREAKER_VARIANT = replace(
    NAIVE,
    name="breaker",
    summary=f"timeouts + bulkhead + breaker (opens after {FAIL_MAX} failures, "
    f"{RESET_S:g} s reset, 1 trial)",
    services=services(TIMEOUTS, OWN_POOLS, BREAKER),
    twin="bulkhead",
)
VARIANTS = (NAIVE, TIMEOUTS_VARIANT, BULKHEAD_VARIANT, BREAKER_VARIANT)


# --- checks ----------------------------------------------------------------------------------


def _phase(result: VariantResult, endpoint: str, phase: str) -> tuple[float, int]:
    numbers = result.extra.get(endpoint.strip("/"), {})
    assert isinstance(numbers, Mapping)
    # A run with no such phase measured gives NaN and 0: every check on it fails.
    return float(numbers.get(f"{phase}_p99_ms", "nan")), int(numbers.get(f"{phase}_requests", 0))


def cascade_vs_contained(broken: str, fixed: str, factor: float) -> Check:
    """Under `broken` the unrelated endpoint's p99 during the fault is >= factor x fixed's."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        (bad, n_bad), (good, n_good) = (
            _phase(results[broken], "/catalog", "during"),
            _phase(results[fixed], "/catalog", "during"),
        )
        ratio = bad / good if good else float("inf")
        return bad >= factor * good and n_good > 0, (
            f"{broken}: /catalog p99 during the fault {bad:,.0f} ms ({n_bad} requests) vs "
            f"{fixed} {good:,.0f} ms ({n_good}) ({ratio:.1f} x), expected >= {factor:g} x"
        )

    def ratio(results: Mapping[str, VariantResult]) -> float:
        bad, good = (_phase(results[v], "/catalog", "during")[0] for v in (broken, fixed))
        return bad / good if good else float("inf")

    name = f"{broken}_catalog_cascades_{factor:g}x_{fixed}"
    return Check(name, evaluate, (broken, fixed), measure=ratio)


def unaffected(variant: str, factor: float, min_requests: int) -> Check:
    """`variant`'s /catalog p99 during the fault stays within factor x its own before it."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        (before, n_before), (during, n_during) = (
            _phase(r, "/catalog", "before"),
            _phase(r, "/catalog", "during"),
        )
        ratio = during / before if before else float("inf")
        enough = n_before >= min_requests and n_during >= min_requests
        return during <= factor * before and enough, (
            f"{variant}: /catalog p99 during the fault {during:,.0f} ms ({n_during} requests) "
            f"vs {before:,.0f} ms before it ({n_before}) ({ratio:.2f} x), expected <= "
            f"{factor:g} x over >= {min_requests} requests each"
        )

    def ratio(results: Mapping[str, VariantResult]) -> float:
        before, during = (_phase(results[variant], "/catalog", p)[0] for p in ("before", "during"))
        return during / before if before else float("inf")

    return Check(f"{variant}_catalog_unaffected", evaluate, (variant,), measure=ratio)


def fails_fast_while_open(variant: str, limit_ms: float, min_requests: int) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        n, p99 = int(r.number("checkout_while_open")), r.number("checkout_while_open_p99_ms")
        return n >= min_requests and p99 < limit_ms, (
            f"{variant}: /checkout while the circuit was open: {n} requests, p99 {p99:,.1f} ms, "
            f"expected p99 < {limit_ms:g} ms over >= {min_requests} requests"
        )

    return Check(
        f"{variant}_checkout_fails_fast_while_open",
        evaluate,
        (variant,),
        measure=lambda results: results[variant].number("checkout_while_open_p99_ms"),
    )


def cycles_and_closes(variant: str, within_s: float) -> Check:
    """closed -> open -> half-open -> closed, in that order, and closed again within
    `within_s` of payments recovering (and still closed at the end)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        moves = [(str(old), str(new)) for _, old, new in r.extra.get("transitions", [])]  # type: ignore[misc]
        wanted = [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        found, rest = [], iter(moves)
        for move in wanted:
            if any(m == move for m in rest):
                found.append(move)
        closed_s = r.number("closed_after_recovery_s")
        final = r.extra.get("final_state")
        counts = r.extra.get("transition_counts") or {}
        shown = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"  # type: ignore[union-attr]
        passed = found == wanted and 0 <= closed_s <= within_s and final == "closed"
        return passed, (
            f"{variant}: transitions {shown}; closed again {closed_s:g} s after payments "
            f"recovered, final state {final}; expected closed->open->half-open->closed and "
            f"closed within {within_s:g} s (reset timeout {RESET_S:g} + 5)"
        )

    return Check(
        f"{variant}_opens_probes_and_closes",
        evaluate,
        (variant,),
        measure=lambda results: results[variant].number("closed_after_recovery_s"),
    )


def load_before_fault(min_s: float) -> Check:
    """Every variant had `min_s` of measured steady load before the fault: the schedule
    counts from Locust's start, which a busy machine can delay by seconds."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        lead = {n: r.number("fault_start_s") for n, r in results.items()}
        short = {n: t for n, t in lead.items() if not t >= min_s}
        shown = ", ".join(f"{n} {t:g}" for n, t in short.items()) or f"min {min(lead.values()):g}"
        return not short, (
            f"seconds of load before payments turned slow: {shown}, expected >= {min_s:g} in "
            "every variant (if not: Locust started late on a busy machine; run again)"
        )

    return Check(
        "steady_load_before_the_fault",
        evaluate,
        (),
        not_applicable="a precondition of the experiment (steady load before the fault), not a fix",
    )


CHECKS = (
    load_before_fault(3.0),
    cascade_vs_contained("naive", "breaker", 10.0),
    # The bulkhead is what keeps /catalog unaffected: its twin is the variant without one.
    replace(unaffected("breaker", 3.0, min_requests=50), twins={"breaker": "timeouts"}),
    fails_fast_while_open("breaker", 50.0, min_requests=50),
    cycles_and_closes("breaker", CLOSE_WITHIN_S),
)


# --- plots -----------------------------------------------------------------------------------


def _lines(result: VariantResult, key: str) -> Series:
    stored = result.extra.get(key) or {}
    assert isinstance(stored, Mapping)
    return {
        label: (xs, [float("nan") if y is None else y for y in ys])
        for label, (xs, ys) in stored.items()
    }


def latency_lines(result: VariantResult) -> Series:
    return _lines(result, "latency_p99")


def in_flight_lines(result: VariantResult) -> Series:
    return _lines(result, "in_flight")


def breaker_band(result: VariantResult) -> Series:
    stored = result.extra.get("breaker_state") or []
    return {"payments breaker": (stored[0], stored[1])} if stored else {}  # type: ignore[index]


# --- exercise --------------------------------------------------------------------------------

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


def _number(section: Mapping[str, Any], key: str, kind: type = float) -> Any:
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if kind is int and value != int(value):
        raise ValueError(f"{key} must be a whole number")
    return kind(value)


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    timeouts, connections, breaker = data["timeouts"], data["connections"], data["breaker"]
    args: dict[str, object] = {
        option: _number(timeouts, key) for key, option in TIMEOUT_KEYS.items()
    }
    if connections["pool"] not in ("shared", "per-downstream"):
        raise ValueError('connections.pool must be "shared" or "per-downstream"')
    if not isinstance(breaker["enabled"], bool):
        raise ValueError("breaker.enabled must be true or false")
    args.update(
        {
            "pool": connections["pool"],
            "max-connections": _number(connections, "max_connections", int),
            "max-in-flight": _number(connections, "max_in_flight", int),
            "breaker": "on" if breaker["enabled"] else "off",
            "breaker-fail-max": _number(breaker, "fail_max", int),
            "breaker-reset-timeout": _number(breaker, "reset_timeout_s"),
            "breaker-half-open-calls": 1,
        }
    )
    if min(args["max-connections"], args["max-in-flight"], args["breaker-fail-max"]) < 0:  # type: ignore[type-var]
        raise ValueError("max_connections, max_in_flight and fail_max must be >= 0")
    if any(float(args[o]) < 0 for o in (*TIMEOUT_KEYS.values(), "breaker-reset-timeout")):  # type: ignore[arg-type]
        raise ValueError("timeouts and reset_timeout_s must be >= 0 seconds")
    if args["max-in-flight"] and connections["pool"] == "shared":
        raise ValueError('a bulkhead (max_in_flight > 0) needs pool = "per-downstream"')
    if breaker["enabled"] and args["breaker-fail-max"] == 0:
        raise ValueError("breaker.fail_max must be >= 1")
    return replace(base, services=services(args))


def timeouts_too_short(variant: Variant) -> str | None:
    args = _gateway_args(variant)
    for key, option in TIMEOUT_KEYS.items():
        value = float(args[option])  # type: ignore[arg-type]
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
    if int(_gateway_args(variant)["max-connections"]) == 0:  # type: ignore[call-overload]
        return (
            "max_connections = 0 means no limit (aiohttp's TCPConnector(limit=0) opens a "
            "connection for every call): there is no pool left for a slow payments to use "
            "up, which removes the bulkhead under test instead of building one. Give the "
            f"pool a size (the broken settings' {POOL_CONNECTIONS}, or {BULKHEAD} per "
            "downstream)."
        )
    return None


def bulkhead_too_small(variant: Variant) -> str | None:
    in_flight = int(_gateway_args(variant).get("max-in-flight", 0))  # type: ignore[call-overload]
    if 0 < in_flight < MIN_BULKHEAD:
        return (
            f"max_in_flight = {in_flight} refuses most of the checkouts even while payments "
            f"is healthy: that removes the payments calls instead of containing them. Use at "
            f"least {MIN_BULKHEAD}."
        )
    return None


def breaker_never_closes(variant: Variant) -> str | None:
    args = _gateway_args(variant)
    if args.get("breaker") == "on" and float(args["breaker-reset-timeout"]) > MAX_RESET_S:  # type: ignore[arg-type]
        return (
            f"a reset timeout of {args['breaker-reset-timeout']} s keeps the circuit open long "
            "after payments recovers: a breaker that never closes cuts payments off. Use at "
            f"most {MAX_RESET_S:g} s."
        )
    return None


def _extra_number(result: VariantResult, endpoint: str, key: str) -> float:
    numbers = result.extra.get(endpoint.strip("/"), {})
    return float(numbers[key]) if isinstance(numbers, Mapping) else float("nan")


def catalog_symptom(result: VariantResult) -> str:
    before, during = (
        _extra_number(result, "/catalog", f"{p}_p99_ms") for p in ("before", "during")
    )
    errors = _extra_number(result, "/catalog", "errors")
    ratio = during / before if before else float("inf")
    return (
        f"/catalog p99 {during:,.0f} ms during the payments slowdown vs {before:,.0f} ms "
        f"before ({ratio:.1f} x), {errors:g} catalog errors; /checkout while the circuit was "
        f"open: {result.number('checkout_while_open'):g} requests, p99 "
        f"{result.number('checkout_while_open_p99_ms'):g} ms"
    )


def _checkout_recovered(result: VariantResult) -> bool:
    end = max((b.t_s for b in result.series if b.requests), default=0.0)
    last = [
        r
        for r in result.raw_requests
        if r.name == "/checkout" and r.start_s - result.origin_s >= end - FINAL_S
    ]
    return bool(last) and all(200 <= r.status < 400 for r in last)


def fix_holds(result: VariantResult) -> bool:
    """The same verdicts as the lab's own checks, on the learner's run alone."""
    named = {result.variant: result}
    return (
        unaffected(result.variant, 3.0, min_requests=50).evaluate(named)[0]
        and _extra_number(result, "/catalog", "errors") == 0
        and fails_fast_while_open(result.variant, 50.0, min_requests=50).evaluate(named)[0]
        and cycles_and_closes(result.variant, CLOSE_WITHIN_S).evaluate(named)[0]
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
        "/catalog p99 during the slowdown <= 3 x before and no catalog errors; /checkout "
        "p99 < 50 ms while the circuit is open; the circuit closes again within "
        f"{CLOSE_WITHIN_S:g} s of payments recovering and checkouts succeed at the end"
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
