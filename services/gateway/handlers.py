"""The gateway's routes and the state they share (GatewayState, under the app key STATE).

A proxy route per downstream answers with the downstream's own response, or, for a call
that got none, a problem+json: its own status (503, 429, ...) for a retryable failure that
outlived the policy, 502/504 for connection errors and timeouts, and a fast 503 with a
Retry-After for a call the bulkhead or the breaker refused. Also GET /healthz, GET
/readyz, and GET /admin/stats (nginx never exposes it): every attempt by outcome, the
retries, budget denials, bulkhead and breaker state, and the policy in force.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from services.common.problem import problem
from services.gateway import adaptive
from services.gateway import breaker as cb
from services.gateway.bulkhead import BulkheadFullError
from services.gateway.config import GatewayConfig
from services.gateway.downstream import Downstream
from services.gateway.pool import SharedPool
from services.gateway.retry.outcome import Outcome, outcome_label

BULKHEAD_RETRY_AFTER_S = 1
"""Retry-After of a call refused by a full bulkhead: slots free as fast as calls finish."""


@dataclass
class GatewayState:
    config: GatewayConfig
    downstreams: dict[str, Downstream]
    started: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    shared_pool: SharedPool | None = None


STATE = web.AppKey("state", GatewayState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def proxy_handler(downstream: Downstream) -> Handler:
    """The handler of `downstream`'s routes: one call through its stack, then the answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.in_flight += 1
        try:
            body = await request.read() if request.method == "POST" else b""
            deadline = state.config.deadline
            budget_s = deadline.budget_s(request.headers, downstream.config.policy.deadline_s)
            if budget_s is not None and deadline.too_little(budget_s):
                downstream.calls["budget_exhausted"] += 1
                outcome = Outcome(error=TimeoutError("deadline budget exhausted"), attempts=0)
                response = problem(
                    504,
                    "Gateway Timeout",
                    f"{downstream.config.name}: {budget_s * 1000:.0f} ms of deadline budget "
                    "left, too little for a call",
                )
            else:
                outcome = await downstream.call(request.method, request.headers, body, budget_s)
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
            "adaptive_limit": adaptive.snapshot(request.app),
        }
    )
