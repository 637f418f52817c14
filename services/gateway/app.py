"""The gateway: an aiohttp service that calls downstream apis with a resilience policy.

Public routes (nginx proxies these): one per downstream (GET/POST /work -> the `api`
downstream), GET /healthz, GET /readyz. Admin route (nginx never exposes it): GET
/admin/stats, with every attempt the gateway made by outcome, its retries, budget denials
and the policy in force, so a lab can compute load amplification.

Each call to a downstream goes through `call_with_retries` (services.gateway.retry): a
fresh tenacity `AsyncRetrying` per call, the downstream's `RetryPolicy`, an optional
process-wide `RetryBudget`, and a per-attempt `ClientTimeout` clipped to the call's
deadline. A retryable failure that outlives the policy is answered with the downstream's
own status (503, 429, ...) or 502/504 for connection errors and timeouts.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from services.common import metrics
from services.common.problem import problem, problem_errors
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
    """Size of this downstream's own connection pool (aiohttp's default is 100)."""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError(f"downstream {self.name}: at least one URL is needed")
        if self.max_connections < 0:
            raise ValueError(f"downstream {self.name}: max_connections must be >= 0")


@dataclass
class GatewayConfig:
    replica_id: str = "gateway-1"
    downstreams: tuple[DownstreamConfig, ...] = ()
    keepalive_timeout_s: float = 75.0
    seed: int | None = None


class Downstream:
    """One dependency: its own session and pool, its policy, budget and counters."""

    def __init__(self, config: DownstreamConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.stats = AttemptStats()
        self.budget = config.budget.build() if config.budget else None
        self.calls: Counter[str] = Counter()
        """Final answer of every call, by outcome label ("200", "503", "timeout", ...)."""
        self.in_flight = 0
        self._urls = itertools.cycle(config.urls)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def call(self, method: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        assert self._session is not None, "downstream not started"
        session = self._session
        forwarded = {k: headers[k] for k in FORWARDED_HEADERS if k in headers}

        async def send(timeout_s: float) -> Outcome:
            url = next(self._urls) + self.config.path
            async with session.request(
                method,
                url,
                data=body or None,
                headers=forwarded,
                timeout=self.config.timeouts.for_attempt(timeout_s),
            ) as response:
                payload = await response.read()
                return Outcome(status=response.status, headers=response.headers, body=payload)

        self.in_flight += 1
        try:
            outcome = await call_with_retries(
                send,
                self.config.policy,
                method=method,
                headers=headers,
                budget=self.budget,
                stats=self.stats,
                rng=self.rng,
            )
        finally:
            self.in_flight -= 1
        self.calls[outcome_label(outcome)] += 1
        return outcome

    def snapshot(self) -> dict[str, object]:
        return {
            "urls": list(self.config.urls),
            "routes": list(self.config.routes),
            "policy": self.config.policy.as_dict(),
            "in_flight": self.in_flight,
            "calls": dict(sorted(self.calls.items())),
            **self.stats.snapshot(),
            "budget": self.budget.snapshot() if self.budget else None,
        }


@dataclass
class GatewayState:
    config: GatewayConfig
    downstreams: dict[str, Downstream]
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    responses: Counter[int] = field(default_factory=Counter)


STATE = web.AppKey("state", GatewayState)


def create_app(config: GatewayConfig) -> web.Application:
    names = [d.name for d in config.downstreams]
    if len(set(names)) != len(names):
        raise ValueError(f"downstream names must be unique: {names}")
    rng = random.Random(config.seed)
    downstreams = {d.name: Downstream(d, random.Random(rng.random())) for d in config.downstreams}
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_errors])
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
    metrics.install(app, service="gateway")
    return app


async def _start_downstreams(app: web.Application) -> None:
    for downstream in app[STATE].downstreams.values():
        await downstream.start()


async def _close_downstreams(app: web.Application) -> None:
    for downstream in app[STATE].downstreams.values():
        await downstream.close()


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
    label = outcome_label(outcome)
    if label == "timeout":
        return problem(504, "Gateway Timeout", f"{downstream}: no answer within the deadline")
    return problem(502, "Bad Gateway", f"{downstream}: {label} ({type(outcome.error).__name__})")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "replica": request.app[STATE].config.replica_id})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = all(d._session is not None for d in state.downstreams.values())
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
            "responses": {str(code): n for code, n in sorted(state.responses.items())},
            "keepalive_timeout_s": state.config.keepalive_timeout_s,
            "downstreams": {name: d.snapshot() for name, d in state.downstreams.items()},
        }
    )
