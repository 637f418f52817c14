"""deadlines' scenario: what each timeout design costs when a dependency turns slow.

clients (Locust) -> nginx -> edge gateway -> orders gateway -> api     (GET /checkout)
                                                            -> catalog (GET /catalog)

Both gateways are services/gateway with their own command lines; each hop holds its calls
in one shared pool of POOL_CONNECTIONS connections. The api serves /checkout with a pool
of WORKERS workers (services.api's worker pool); mid-run its work per request grows
SLOW_FACTOR times, so requests queue there. The catalog is never touched.

- `no-timeouts`: nobody gives up. Every checkout call waits out the api's queue and holds
  a pooled connection at both hops meanwhile: /catalog queues behind them (pile-up).
- `per-hop`: the client waits BUDGET_MS, the edge 1 s, the orders hop 2 s per attempt
  with 3 attempts (inner timeouts longer than outer ones, and inner retries): the api
  works on requests whose client already gave up.
- `deadline`: the same timeouts, plus the client's budget travels with every call
  (`X-Timeout-Ms`, remaining ms): each hop waits no longer than what is left, keeps a
  margin for the way back, fails fast with too little left and stops retrying at the
  deadline; the api sheds queued work that could not finish in time.

A second pair on its own topology (nginx -> gateway -> api x 2), a slow tail on the api:
- `unhedged`: each call waits its own copy out; `hedged`: a second copy to the other
  replica after HEDGE_DELAY_MS, first answer wins, hedges within a budget -- which matters
  once every replica turns slow.

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

WORKERS = 4
WORK_MS = 25.0
"""The api's work per /checkout request, holding one of its WORKERS workers."""
SLOW_FACTOR = 20
"""In the slow phase every request's work x this: 500 ms, 8 requests/s for 4 workers."""
CATALOG_LATENCY_MS = 20
FAULT_AT_S, RECOVER_AT_S = 5.0, 13.0
"""Seconds after Locust starts (which itself takes 1-3 s to send the first request)."""
DURATION_S = 17
CHECKOUT_USERS, CATALOG_USERS = 60, 24
THINK_S = (1.5, 2.5)
BUDGET_MS = 800
"""The client's budget (per-hop and deadline): it gives up after this long."""
POOL_CONNECTIONS = 16
"""Each hop's connections, shared by both routes: fewer than the checkout users, so
checkout calls that never give up can hold all of them."""

EDGE_TIMEOUT_S = 1.0
ORDERS_ATTEMPT_S, ORDERS_ATTEMPTS, ORDERS_DEADLINE_S = 2.0, 3, 6.0
MARGIN_MS = 100
"""Kept back at each hop (deadline): its downstream must answer this much before it."""
MIN_BUDGET_MS = 50
"""Less budget left than this: the hop answers 504 without calling (deadline)."""

# What the checks (and the exercise's grade) hold the numbers to.
LEAD_S = 3.0
"""Seconds of measured load every variant needs before the slow phase."""
WASTED_AT_LEAST_PCT = 30.0
"""per-hop: share of the api's slow-phase work done after its client stopped waiting."""
WASTED_AT_MOST_PCT = 2.0
"""deadline: the same share."""
MIN_USEFUL_WORK_S = 10.0
"""deadline: api work-seconds in the slow phase that reached a waiting client (8 s x 4
workers is 32 at most): shedding everything would waste nothing, too."""
PILE_UP_FACTOR = 10.0
"""no-timeouts' /catalog p99 in the slow phase is >= this x deadline's."""
MIN_REQUESTS = 20
"""/catalog requests each compared slow phase needs for its p99 to mean something."""

FAULTS = (
    FaultStep(FAULT_AT_S, "api", {"work_factor": SLOW_FACTOR}),
    FaultStep(RECOVER_AT_S, "api", {"work_factor": 0}),
)

API_BASE: dict[str, object] = {
    "workers": WORKERS,
    "work-ms": WORK_MS,
    "queue": "fifo",
    "work-log": "on",
    "shed-expired": "off",
    "shed-hopeless": "off",
    "seed": 1,
}
API_SHEDDING: dict[str, object] = {"shed-expired": "on", "shed-hopeless": "on"}
CATALOG = ServiceSpec(
    "catalog", module="services.api", args={"latency-ms": CATALOG_LATENCY_MS, "seed": 2}
)

HOP_BASE: dict[str, object] = {
    "seed": 7,
    "pool": "shared",
    "max-connections": POOL_CONNECTIONS,
    "retry-strategy": "none",
    "connect-timeout": 0,
    "read-timeout": 0,
    "attempt-timeout": 0,
    "retry-deadline": 0,
    "deadline-propagation": "off",
    "deadline-margin-ms": MARGIN_MS,
    "min-budget-ms": MIN_BUDGET_MS,
}
"""Every gateway option the lab sets, so each variant's command line says everything."""
EDGE_TIMEOUTS: dict[str, object] = {"attempt-timeout": EDGE_TIMEOUT_S, "retry-deadline": 1.0}
ORDERS_TIMEOUTS: dict[str, object] = {
    "attempt-timeout": ORDERS_ATTEMPT_S,
    "retry-deadline": ORDERS_DEADLINE_S,
    "retry-strategy": "exponential",
    "retry-max-attempts": ORDERS_ATTEMPTS,
    "retry-base": 0.1,
    "retry-cap": 1.0,
    "retry-after": "off",
}
PROPAGATE: dict[str, object] = {"deadline-propagation": "on"}


def edge(*settings: Mapping[str, object]) -> ServiceSpec:
    args = {**HOP_BASE, "payments-path": "/checkout", "catalog-path": "/catalog"}
    for part in settings:
        args.update(part)
    return ServiceSpec(
        "edge",
        module="services.gateway",
        args=args,
        depends_on={"payments-url": "orders", "catalog-url": "orders"},
    )


def orders(*settings: Mapping[str, object]) -> ServiceSpec:
    args = dict(HOP_BASE)
    for part in settings:
        args.update(part)
    return ServiceSpec(
        "orders",
        module="services.gateway",
        args=args,
        depends_on={"payments-url": "api", "catalog-url": "catalog"},
    )


def api(*settings: Mapping[str, object]) -> ServiceSpec:
    args = dict(API_BASE)
    for part in settings:
        args.update(part)
    return ServiceSpec("api", module="services.api", args=args)


def load(budget_ms: int) -> LoadSpec:
    return LoadSpec(
        locustfile="deadlines.py",
        users=CHECKOUT_USERS + CATALOG_USERS,
        spawn_rate=CHECKOUT_USERS + CATALOG_USERS,
        duration_s=DURATION_S,
        env={
            "LAB_ENDPOINTS": f"/checkout:{CHECKOUT_USERS},/catalog:{CATALOG_USERS}",
            "LAB_THINK_MIN_S": str(THINK_S[0]),
            "LAB_THINK_MAX_S": str(THINK_S[1]),
            "LAB_BUDGET_MS": str(budget_ms),
        },
    )


NO_TIMEOUTS = Variant(
    name="no-timeouts",
    summary="nobody gives up: clients, hops and the api all wait as long as it takes",
    nginx=NginxSpec(upstream=Upstream(keepalive=32), backend="edge"),
    services=(api(), CATALOG, orders(), edge()),
    load=load(0),
    faults=FAULTS,
    twin="deadline",
)
PER_HOP = replace(
    NO_TIMEOUTS,
    name="per-hop",
    summary=f"client {BUDGET_MS} ms, edge {EDGE_TIMEOUT_S:g} s, orders {ORDERS_ATTEMPT_S:g} s "
    f"x {ORDERS_ATTEMPTS} attempts: inner timeouts longer than outer ones",
    services=(api(), CATALOG, orders(ORDERS_TIMEOUTS), edge(EDGE_TIMEOUTS)),
    load=load(BUDGET_MS),
    twin="deadline",
)
DEADLINE = replace(
    PER_HOP,
    name="deadline",
    summary=f"per-hop's timeouts + the client's {BUDGET_MS} ms budget passed hop to hop "
    f"(X-Timeout-Ms, {MARGIN_MS} ms margin per hop); the api sheds what cannot finish in time",
    services=(
        api(API_SHEDDING),
        CATALOG,
        orders(ORDERS_TIMEOUTS, PROPAGATE),
        edge(EDGE_TIMEOUTS, PROPAGATE),
    ),
    twin="per-hop",
)
VARIANTS = (NO_TIMEOUTS, PER_HOP, DEADLINE)

# Hedged requests: nginx -> gateway -> api x API_REPLICAS, every api request
# TAIL_LATENCY_MS x TAIL_FACTOR with probability TAIL_RATE (a slow tail), then from
# ALL_SLOW_AT_S every request TAIL_FACTOR x slower on every replica (an overload).
API_REPLICAS = 2
TAIL_LATENCY_MS, TAIL_RATE, TAIL_FACTOR = 20, 0.05, 25
HEDGE_DELAY_MS = 60
"""Past the fast requests' p95 (20 ms of work plus two proxies, on a busy machine too),
well below the tail."""
HEDGE_BUDGET_RATIO, HEDGE_BUDGET_TOKENS = 0.1, 10
ALL_SLOW_SETTLE_S = 1.0
"""The all-slow phase is measured from this long after the fault: the bucket's saved
tokens (at most HEDGE_BUDGET_TOKENS hedges) are spent by then."""
ALL_SLOW_AT_S, HEDGE_DURATION_S = 9.0, 16
HEDGE_USERS, HEDGE_THINK_S = 30, (0.1, 0.3)
HEDGE_P99_AT_MOST = 0.3
"""hedged's p99 in the tail phase <= this x unhedged's."""
HEDGE_EXTRA_AT_MOST_PCT = 10.0
"""Extra api requests (api arrivals over client requests) in the tail phase."""
BUDGET_BAND_PCT = (5.0, 13.0)
"""Extra api requests in the all-slow phase, once the bucket's saved tokens are spent:
about HEDGE_BUDGET_RATIO, where every request outlives the delay."""
MIN_HEDGE_REQUESTS = 500
"""Client requests each tail phase needs for its p99 to mean something."""

HEDGE_API = ServiceSpec(
    "api",
    module="services.api",
    replicas=API_REPLICAS,
    args={"latency-ms": TAIL_LATENCY_MS, "tail-rate": TAIL_RATE, "tail-factor": TAIL_FACTOR},
)
HEDGE_GATEWAY_BASE: dict[str, object] = {
    "seed": 7,
    "retry-strategy": "none",
    "retry-deadline": 5.0,
    "hedge": "off",
    "hedge-delay-ms": HEDGE_DELAY_MS,
    "hedge-budget": "on",
    "hedge-budget-ratio": HEDGE_BUDGET_RATIO,
    "hedge-budget-tokens": HEDGE_BUDGET_TOKENS,
}


def gateway(*settings: Mapping[str, object]) -> ServiceSpec:
    args = dict(HEDGE_GATEWAY_BASE)
    for part in settings:
        args.update(part)
    return ServiceSpec(
        "gateway", module="services.gateway", args=args, depends_on={"api-url": "api"}
    )


UNHEDGED = Variant(
    name="unhedged",
    summary=f"{TAIL_RATE:.0%} of api requests {TAIL_FACTOR}x slower "
    f"({TAIL_LATENCY_MS * TAIL_FACTOR} ms), then every one: each call waits its own copy out",
    nginx=NginxSpec(upstream=Upstream(keepalive=32), backend="gateway"),
    services=(HEDGE_API, gateway()),
    load=LoadSpec(
        locustfile="deadlines.py",
        users=HEDGE_USERS,
        spawn_rate=HEDGE_USERS,
        duration_s=HEDGE_DURATION_S,
        env={
            "LAB_ENDPOINTS": f"/work:{HEDGE_USERS}",
            "LAB_THINK_MIN_S": str(HEDGE_THINK_S[0]),
            "LAB_THINK_MAX_S": str(HEDGE_THINK_S[1]),
        },
    ),
    faults=(
        FaultStep(
            ALL_SLOW_AT_S,
            "api",
            {"latency_ms": TAIL_LATENCY_MS * TAIL_FACTOR, "tail_rate": 0},
            label="all slow",
        ),
    ),
    twin="hedged",
)
HEDGED = replace(
    UNHEDGED,
    name="hedged",
    summary=f"a second copy to the other replica after {HEDGE_DELAY_MS} ms, first answer "
    f"wins; hedges within {HEDGE_BUDGET_RATIO:.0%} of calls (a token bucket)",
    services=(HEDGE_API, gateway({"hedge": "on"})),
    twin="unhedged",
)
HEDGE_VARIANTS = (UNHEDGED, HEDGED)
VARIANTS = (*VARIANTS, *HEDGE_VARIANTS)
