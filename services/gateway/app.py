"""The gateway: an aiohttp service that calls downstream apis with a resilience policy.

Public routes (nginx proxies these): one or more per downstream (GET/POST /work -> `api`,
/checkout -> `payments`, /catalog -> `catalog`), GET /healthz, GET /readyz. Admin route
(nginx never exposes it): GET /admin/stats, with every attempt the gateway made by
outcome, its retries, budget denials, bulkhead and breaker state and the policy in force.

Each call to a downstream goes through the resilience stack, outermost first:

1. the per-request deadline (`RetryPolicy.deadline_s`) bounds everything below;
2. the bulkhead (optional): the downstream's own connection pool and a cap on its calls
   in flight, so one slow dependency cannot hold every connection and task of the gateway;
   a call over the cap is refused at once (503, Retry-After);
3. the circuit breaker (optional, services.gateway.breaker over pybreaker): after
   `fail_max` consecutive failures (timeouts, connection errors, 5xx; 4xx are neutral) it
   refuses calls at once (503, Retry-After) for `reset_timeout_s`, then lets one trial
   through; every transition is logged, counted and exported (breaker_state gauge);
4. `call_with_retries` (services.gateway.retry): a fresh tenacity `AsyncRetrying` per call,
   the downstream's `RetryPolicy`, an optional process-wide `RetryBudget`, and a
   per-attempt `ClientTimeout` (connect, read, total) clipped to the deadline. Retries sit
   inside the breaker, so the breaker judges whole calls and an open circuit is never
   retried against.

Without a bulkhead the downstreams share one pool (`pool="shared"`) or each gets a plain
pool of its own. A retryable failure that outlives the policy is answered with the
downstream's own status (503, 429, ...) or 502/504 for connection errors and timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import pybreaker
from aiohttp import web

from services.common import metrics
from services.common.problem import problem, problem_errors
from services.gateway import breaker as cb
from services.gateway.bulkhead import Bulkhead, BulkheadConfig, BulkheadFullError
from services.gateway.retry import (
    AttemptStats,
    Outcome,
    RetryBudget,
    RetryPolicy,
    call_with_retries,
    outcome_label,
)

FORWARDED_HEADERS = ("Content-Type", "Idempotency-Key", "Accept")
"""Request headers passed on to the downstream; the rest stay at the gateway."""
MAX_BODY_BYTES = 64 * 1024
BULKHEAD_RETRY_AFTER_S = 1
"""Retry-After of a call refused by a full bulkhead: slots free as fast as calls finish."""

Pool = Literal["per-downstream", "shared"]
POOLS: tuple[Pool, ...] = ("per-downstream", "shared")


@dataclass(frozen=True)
class Timeouts:
    """aiohttp ClientTimeout parts for one attempt (None = no limit of that kind)."""

    connect_s: float | None = 1.0
    """Opening a connection, including the wait for a free slot in the pool."""
    read_s: float | None = None
    """Silence between two reads of the response (sock_read)."""

    def for_attempt(self, total_s: float) -> aiohttp.ClientTimeout:
        # A per-request timeout replaces the session's, so every part is given here.
        return aiohttp.ClientTimeout(total=total_s, connect=self.connect_s, sock_read=self.read_s)


@dataclass(frozen=True)
class BudgetConfig:
    ratio: float = 0.1
    min_retries_per_s: float = 1.0
    window_s: float = 10.0

    def build(self) -> RetryBudget:
        return RetryBudget(self.ratio, self.min_retries_per_s, self.window_s)


@dataclass(frozen=True)
class DownstreamConfig:
    name: str
    urls: tuple[str, ...]
    """Base URLs of the downstream's replicas; calls rotate over them."""
    path: str = "/work"
    """Path called on the downstream."""
    routes: tuple[str, ...] = ("/work",)
    """Gateway paths (GET and POST) that call this downstream."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetConfig | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 100
    """Size of this downstream's own connection pool (aiohttp's default is 100; 0 = no
    limit). Unused when the gateway's pool is shared."""
    max_in_flight: int = 0
    """Bulkhead: calls in flight to this downstream; the next one is refused at once
    (0 = no bulkhead). Needs a pool of its own."""
    breaker: cb.BreakerConfig | None = None
    """Circuit breaker for this downstream (None = none)."""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError(f"downstream {self.name}: at least one URL is needed")
        if self.max_connections < 0:
            raise ValueError(f"downstream {self.name}: max_connections must be >= 0")
        if self.max_in_flight < 0:
            raise ValueError(f"downstream {self.name}: max_in_flight must be >= 0")
        if (
            self.max_in_flight
            and self.max_connections
            and self.max_connections < self.max_in_flight
        ):
            # An admitted call would then queue for a connection, and the queueing would
            # count against its connect timeout (see services.gateway.bulkhead).
            raise ValueError(
                f"downstream {self.name}: max_connections ({self.max_connections}) must be "
                f">= max_in_flight ({self.max_in_flight})"
            )

    def bulkhead_config(self) -> BulkheadConfig | None:
        if not self.max_in_flight:
            return None
        return BulkheadConfig(
            max_connections=self.max_connections or self.max_in_flight,
            max_in_flight=self.max_in_flight,
            name=self.name,
            auto_decompress=False,
        )


@dataclass
class GatewayConfig:
    replica_id: str = "gateway-1"
    downstreams: tuple[DownstreamConfig, ...] = ()
    keepalive_timeout_s: float = 75.0
    seed: int | None = None
    pool: Pool = "per-downstream"
    """"shared": every downstream draws from one connection pool (a slow one can take all
    of it); "per-downstream": each has its own."""
    shared_max_connections: int = 100
    """Size of the shared pool (0 = no limit)."""

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {self.pool!r}")
        if self.shared_max_connections < 0:
            raise ValueError("shared_max_connections must be >= 0")
        if self.pool == "shared":
            with_bulkhead = [d.name for d in self.downstreams if d.max_in_flight]
            if with_bulkhead:
                raise ValueError(
                    f"a bulkhead needs a pool of its own, not the shared one: "
                    f"{', '.join(with_bulkhead)} (use pool per-downstream)"
                )


def new_session(max_connections: int) -> aiohttp.ClientSession:
    """A session with its own pool; bodies are passed through as they came."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


def breaker_outcome(outcome: Outcome) -> cb.Outcome:
    """How a call's final outcome counts for the breaker: no answer (timeout, connection
    error) and 5xx are failures of the dependency; 4xx say nothing about its health (the
    caller's mistake, or its own rate limit), so they are neutral."""
    if outcome.error is not None or (outcome.status or 0) >= 500:
        return cb.Outcome.FAILURE
    if (outcome.status or 0) >= 400:
        return cb.Outcome.NEUTRAL
    return cb.Outcome.SUCCESS


class SharedPool:
    """One pool of connections for every downstream: each call holds a slot for its whole
    exchange, and calls wait for a slot in arrival order, whichever downstream they are for.

    This is a blocking connection pool (or a thread-per-request server's worker pool): a
    slow downstream's calls hold their slots for as long as it takes, and the calls behind
    them wait, fast downstreams' included. aiohttp's own `limit` alone would not show it:
    it hands an idle keep-alive connection to a host's next call even while calls to
    other hosts wait for a slot, so a steady fast downstream keeps its few warm
    connections. The wait for a slot counts against the connect timeout, as aiohttp's
    does (a TimeoutError, answered 504).
    """

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.session: aiohttp.ClientSession | None = None
        self.in_use = 0
        self.waiting = 0
        self.peak_waiting = 0
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None

    async def start(self) -> None:
        self.session = new_session(self.max_connections)

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    @contextlib.asynccontextmanager
    async def slot(self, wait_s: float | None) -> AsyncIterator[None]:
        """Hold a slot for the block; wait at most `wait_s` for one (None: as long as it takes)."""
        if self._slots is None:
            yield
            return
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            async with asyncio.timeout(wait_s):
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()

    def snapshot(self) -> dict[str, object]:
        return {
            "max_connections": self.max_connections,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "peak_waiting": self.peak_waiting,
        }


class _BreakerGauge(pybreaker.CircuitBreakerListener):
    """Keeps the breaker_state gauge of /metrics in step with every transition."""

    def __init__(self, service_metrics: metrics.ServiceMetrics, name: str) -> None:
        self._metrics = service_metrics
        self._name = name

    def state_change(self, cb_: pybreaker.CircuitBreaker, old_state, new_state) -> None:
        self._metrics.set_breaker_state(self._name, new_state.name)


class Downstream:
    """One dependency: its session and pool (own, shared or a bulkhead's), its breaker,
    policy, budget and counters."""

    def __init__(
        self,
        config: DownstreamConfig,
        rng: random.Random,
        service_metrics: metrics.ServiceMetrics | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.stats = AttemptStats()
        self.budget = config.budget.build() if config.budget else None
        self.calls: Counter[str] = Counter()
        """Final answer of every call, by outcome label ("200", "503", "timeout",
        "bulkhead_full", "breaker_open", ...)."""
        self.in_flight = 0
        self.peak_in_flight = 0
        self._metrics = service_metrics
        self._urls = itertools.cycle(config.urls)
        self._session: aiohttp.ClientSession | None = None
        self._owns_session = True
        self._shared: SharedPool | None = None
        bulkhead = config.bulkhead_config()
        self.bulkhead = Bulkhead(bulkhead) if bulkhead else None
        self.breaker: cb.AsyncCircuitBreaker | None = None
        if config.breaker is not None:
            listeners = [_BreakerGauge(service_metrics, config.name)] if service_metrics else []
            self.breaker = cb.AsyncCircuitBreaker(config.breaker, listeners=listeners)
            if service_metrics:
                service_metrics.set_breaker_state(config.name, self.breaker.state)

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self, shared: SharedPool | None = None) -> None:
        """Use the gateway's `shared` pool, or a pool of this downstream's own."""
        if shared is not None:
            self._shared, self._session, self._owns_session = shared, shared.session, False
        elif self.bulkhead is not None:
            await self.bulkhead.start()
            self._session = self.bulkhead.session
        else:
            self._session = new_session(self.config.max_connections)

    async def close(self) -> None:
        session, self._session = self._session, None
        if self.bulkhead is not None:
            await self.bulkhead.close()
        elif session is not None and self._owns_session:
            await session.close()

    async def call(self, method: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        """One request through the stack: bulkhead, breaker, retries (module docstring).
        A refusal by the bulkhead or the breaker comes back as an Outcome whose error is
        the `BulkheadFullError` / `CircuitOpenError`."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.bulkhead is None:
                outcome = await self._guarded(method, headers, body)
            else:
                async with self.bulkhead.slot():
                    outcome = await self._guarded(method, headers, body)
        except (BulkheadFullError, cb.CircuitOpenError) as refused:
            outcome = Outcome(error=refused, attempts=0)
            if self._metrics is not None:
                self._metrics.rejected.labels(self._metrics.service, _refusal(refused)).inc()
        finally:
            self.in_flight -= 1
        self.calls[call_label(outcome)] += 1
        return outcome

    async def _guarded(self, method: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        if self.breaker is None:
            return await self._retried(method, headers, body)
        return await self.breaker.call(
            self._retried, method, headers, body, classify=breaker_outcome
        )

    async def _retried(self, method: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        assert self._session is not None, "downstream not started"
        session = self._session
        forwarded = {k: headers[k] for k in FORWARDED_HEADERS if k in headers}

        async def send(timeout_s: float) -> Outcome:
            url = next(self._urls) + self.config.path
            wait_s = self.config.timeouts.connect_s
            slot = self._shared.slot(wait_s) if self._shared else contextlib.nullcontext()
            async with (
                slot,
                session.request(
                    method,
                    url,
                    data=body or None,
                    headers=forwarded,
                    timeout=self.config.timeouts.for_attempt(timeout_s),
                ) as response,
            ):
                payload = await response.read()
                return Outcome(status=response.status, headers=response.headers, body=payload)

        return await call_with_retries(
            send,
            self.config.policy,
            method=method,
            headers=headers,
            budget=self.budget,
            stats=self.stats,
            rng=self.rng,
        )

    def snapshot(self) -> dict[str, object]:
        timeouts = self.config.timeouts
        return {
            "urls": list(self.config.urls),
            "routes": list(self.config.routes),
            "policy": self.config.policy.as_dict(),
            "timeouts": {"connect_s": timeouts.connect_s, "read_s": timeouts.read_s},
            "pool": "own" if self._owns_session else "shared",
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "calls": dict(sorted(self.calls.items())),
            **self.stats.snapshot(),
            "budget": self.budget.snapshot() if self.budget else None,
            "bulkhead": self.bulkhead.snapshot() if self.bulkhead else None,
            "breaker": breaker_snapshot(self.breaker) if self.breaker else None,
        }


def breaker_snapshot(breaker: cb.AsyncCircuitBreaker) -> dict[str, object]:
    """The adapter's snapshot plus its latest transitions on the wall clock (epoch
    seconds), so a lab can line them up with its clients' requests."""
    offset = time.time() - time.monotonic()
    return {
        **breaker.snapshot(),
        "reset_timeout_s": breaker.config.reset_timeout_s,
        "transition_log": [
            {"epoch_s": round(at + offset, 4), "from": old, "to": new}
            for at, old, new in breaker.transitions
        ],
    }


def _refusal(error: BaseException) -> str:
    return "bulkhead_full" if isinstance(error, BulkheadFullError) else "breaker_open"


def call_label(outcome: Outcome) -> str:
    """outcome_label, plus the two refusals that never reached the downstream."""
    if isinstance(outcome.error, BulkheadFullError | cb.CircuitOpenError):
        return _refusal(outcome.error)
    return outcome_label(outcome)


@dataclass
class GatewayState:
    config: GatewayConfig
    downstreams: dict[str, Downstream]
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    shared_pool: SharedPool | None = None


STATE = web.AppKey("state", GatewayState)


def create_app(config: GatewayConfig) -> web.Application:
    names = [d.name for d in config.downstreams]
    if len(set(names)) != len(names):
        raise ValueError(f"downstream names must be unique: {names}")
    rng = random.Random(config.seed)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_errors])
    service_metrics = metrics.install(app, service="gateway")
    downstreams = {
        d.name: Downstream(d, random.Random(rng.random()), service_metrics)
        for d in config.downstreams
    }
    app[STATE] = GatewayState(config, downstreams)
    for downstream in downstreams.values():
        handler = _proxy_handler(downstream)
        for route in downstream.config.routes:
            app.router.add_get(route, handler)
            app.router.add_post(route, handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/admin/stats", stats)
    app.on_startup.append(_start_downstreams)
    app.on_cleanup.append(_close_downstreams)
    return app


async def _start_downstreams(app: web.Application) -> None:
    state = app[STATE]
    if state.config.pool == "shared":
        state.shared_pool = SharedPool(state.config.shared_max_connections)
        await state.shared_pool.start()
    for downstream in state.downstreams.values():
        await downstream.start(state.shared_pool)


async def _close_downstreams(app: web.Application) -> None:
    state = app[STATE]
    for downstream in state.downstreams.values():
        await downstream.close()
    if state.shared_pool is not None:
        await state.shared_pool.close()


def _proxy_handler(downstream: Downstream):
    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.in_flight += 1
        try:
            body = await request.read() if request.method == "POST" else b""
            outcome = await downstream.call(request.method, request.headers, body)
            response = _answer(outcome, downstream.config.name)
        finally:
            state.in_flight -= 1
        state.responses[response.status] += 1
        response.headers["X-Gateway"] = state.config.replica_id
        response.headers["X-Attempts"] = str(outcome.attempts)
        return response

    return handler


def _answer(outcome: Outcome, downstream: str) -> web.Response:
    """The downstream's answer as is, or a problem+json for a call that got none."""
    if outcome.error is None:
        assert outcome.status is not None
        response = web.Response(status=outcome.status, body=outcome.body)
        for name in ("Content-Type", "Retry-After", "X-Replica"):
            value = outcome.header(name)
            if value is not None:
                response.headers[name] = value
        return response
    error = outcome.error
    if isinstance(error, cb.CircuitOpenError):
        return _refused(downstream, f"circuit {error.state}", error.retry_after_s)
    if isinstance(error, BulkheadFullError):
        detail = f"bulkhead full ({error.max_in_flight} calls in flight)"
        return _refused(downstream, detail, BULKHEAD_RETRY_AFTER_S)
    label = outcome_label(outcome)
    if label == "timeout":
        return problem(504, "Gateway Timeout", f"{downstream}: no answer within the deadline")
    return problem(502, "Bad Gateway", f"{downstream}: {label} ({type(outcome.error).__name__})")


def _refused(downstream: str, why: str, retry_after_s: float) -> web.Response:
    """The fast answer for a call the gateway did not make: 503 with a Retry-After in
    whole seconds (at least 1, as RFC 9110 has no fractions)."""
    response = problem(503, "Service Unavailable", f"{downstream}: {why}, call not made")
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "replica": request.app[STATE].config.replica_id})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = all(d.started for d in state.downstreams.values())
    return web.json_response(
        {"ready": ready, "replica": state.config.replica_id}, status=200 if ready else 503
    )


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "replica": state.config.replica_id,
            "uptime_s": round(time.monotonic() - state.started, 3),
            "in_flight": state.in_flight,
            "pool": state.config.pool,
            "shared_pool": state.shared_pool.snapshot() if state.shared_pool else None,
            "responses": {str(code): n for code, n in sorted(state.responses.items())},
            "keepalive_timeout_s": state.config.keepalive_timeout_s,
            "downstreams": {name: d.snapshot() for name, d in state.downstreams.items()},
        }
    )
