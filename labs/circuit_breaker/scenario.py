"""circuit-breaker's scenario: one slow dependency takes down an unrelated endpoint, and
what contains it.

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

The constants and the variants; it imports only the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from labs.engine.model.spec import (
    FaultStep,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)

ENDPOINTS = {"/checkout": "payments", "/catalog": "catalog"}
"""Gateway route -> the downstream it calls."""
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

# What the checks (and the exercise's grade) hold the numbers to.
LEAD_S = 3.0
"""Seconds of measured load every variant needs before the fault."""
CASCADE_FACTOR = 10.0
"""naive's /catalog p99 during the fault is at least this many times breaker's."""
UNAFFECTED_FACTOR = 3.0
"""A contained /catalog's p99 during the fault stays within this many times its own before."""
FAST_MS = 50.0
"""/checkout's p99 while the circuit is open stays below this."""
MIN_REQUESTS = 50
"""Requests each compared phase needs for its p99 to mean something."""

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
