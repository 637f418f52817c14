"""The api under test: a tiny work endpoint with a fault switch.

Public routes (nginx proxies these): GET/POST /work, GET /healthz, GET /readyz (503
while the process drains on its way out: services.common.shutdown), and with
`--orders redis` the orders resource (services.api.orders).
Admin routes (nginx never exposes them): /admin/faults, /admin/stats, /metrics (Prometheus).
Every response names the process that sent it: `X-Replica-Boot`, a random id drawn at
start-up, so a client behind the proxy can tell a restarted replica from the old one.
"""

from __future__ import annotations

import json
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from services.api import orders, ratelimit, release, workpool
from services.api.arrivals import Arrivals
from services.api.connections import REQUESTS_HEADER, ConnectionReuse
from services.api.faults import FaultError, Faults
from services.common import health, metrics
from services.common.problem import problem, problem_errors

MAX_BODY_BYTES = 64 * 1024
BOOT_HEADER = "X-Replica-Boot"


@dataclass
class ApiConfig:
    replica_id: str = "api-1"
    keepalive_timeout_s: float = 75.0
    """How long an idle HTTP keep-alive connection stays open before the api closes it."""
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    ratelimit: ratelimit.RateLimitConfig | None = None
    """Per-tenant limiting of /work (services.api.ratelimit); None = off."""
    orders: orders.OrdersConfig | None = None
    """The orders resource on Redis (services.api.orders); None = off."""
    pool: workpool.PoolConfig | None = None
    """Work requests served by a pool of workers with a queue (services.api.workpool);
    None = off: every request is served at once."""
    release: release.ReleaseConfig = field(default_factory=release.ReleaseConfig)
    """Its release name and cold start (services.api.release; default: none, never cold)."""


@dataclass
class ApiState:
    config: ApiConfig
    rng: random.Random
    in_flight: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    arrivals: Arrivals = field(default_factory=Arrivals)
    """Work requests per 100 ms (the retries lab plots retry waves from it)."""
    connections: ConnectionReuse = field(default_factory=ConnectionReuse)
    """Work requests on new vs reused keep-alive connections, and connections the api
    closed first (the keepalive lab); each work response says which request on its
    connection it answered (`X-Connection-Requests`)."""
    boot: str = field(default_factory=lambda: secrets.token_hex(4))
    """This process's id (`X-Replica-Boot`): a replica started again gets a new one."""
    pool: workpool.WorkPool | None = None
    cold: release.ColdStart | None = None


STATE = web.AppKey("state", ApiState)


def create_app(config: ApiConfig) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_errors])
    app[STATE] = ApiState(config=config, rng=random.Random(config.seed))
    app[STATE].cold = release.ColdStart(config.release)
    if config.pool:
        app[STATE].pool = workpool.WorkPool(
            config.pool, factor=lambda: app[STATE].config.faults.work_factor
        )
    app.on_response_prepare.append(_name_the_boot)
    app.router.add_get("/work", work)
    app.router.add_post("/work", work)
    health.install(app, config.replica_id)
    app.router.add_get("/admin/faults", get_faults)
    app.router.add_put("/admin/faults", update_faults)
    app.router.add_post("/admin/faults", update_faults)
    app.router.add_delete("/admin/faults", reset_faults)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/admin/worklog", worklog)
    metrics.install(app, service="api")
    if config.orders:

        def current_faults() -> Faults:  # DELETE /admin/faults replaces the object
            return app[STATE].config.faults

        orders.install(app, config.orders, current_faults, app[STATE].rng, config.replica_id)
    if config.ratelimit:
        ratelimit.install(app, config.ratelimit)  # inside metrics: its 429s are counted
    return app


async def _name_the_boot(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[BOOT_HEADER] = request.app[STATE].boot


async def work(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.arrivals.record()
    carried = state.connections.record(request.transport)
    state.in_flight += 1
    try:
        response = await _do_work(request, state)
    finally:
        state.in_flight -= 1
    state.responses[response.status] += 1
    response.headers["X-Replica"] = state.config.replica_id
    if state.config.release.name:
        response.headers[release.RELEASE_HEADER] = state.config.release.name
    response.headers[REQUESTS_HEADER] = str(carried)
    return response


async def _do_work(request: web.Request, state: ApiState) -> web.Response:
    faults = state.config.faults
    body_bytes = 0
    if request.method == "POST":
        try:
            body_bytes = len(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "Payload Too Large", f"body limit is {MAX_BODY_BYTES} bytes")
    if faults.in_outage():
        return _outage_response(faults)
    if state.cold is not None:
        await state.cold.serve()
    if faults.max_concurrent and state.in_flight > faults.max_concurrent:
        return problem(503, "Service Unavailable", "over capacity (injected limit)")
    if state.pool is not None:
        timeout_ms = workpool.timeout_ms(request.headers.get(workpool.TIMEOUT_HEADER))
        request_id = request.headers.get(workpool.REQUEST_ID_HEADER, "")
        if shed := await state.pool.serve(timeout_ms, request_id):
            return problem(503, "Service Unavailable", f"shed by the worker pool ({shed})")
    if faults.latency_ms:
        # An outage that starts meanwhile fails this request at once, like a crash would.
        await faults.delay(faults.latency_s(state.rng))
        if faults.in_outage():
            return _outage_response(faults)
    if faults.should_fail(state.rng):
        return problem(faults.error_status, "Injected Error", "fault switch is on")
    return web.json_response(
        {"replica": state.config.replica_id, "method": request.method, "body_bytes": body_bytes}
    )


def _outage_response(faults: Faults) -> web.Response:
    response = problem(503, "Service Unavailable", "injected outage")
    response.headers["Retry-After"] = str(max(1, round(faults.outage_remaining_s())))
    return response


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].config.faults.as_dict())


async def update_faults(request: web.Request) -> web.Response:
    try:
        changes = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem(400, "Bad Request", "body must be a JSON object")
    if not isinstance(changes, dict):
        return problem(400, "Bad Request", "body must be a JSON object")
    faults = request.app[STATE].config.faults
    try:
        faults.update(changes)
    except FaultError as exc:
        return problem(422, "Invalid Fault Setting", str(exc))
    return web.json_response(faults.as_dict())


async def reset_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.config.faults = Faults()
    return web.json_response(state.config.faults.as_dict())


async def worklog(request: web.Request) -> web.Response:
    """The worker pool's work log (--work-log on): [request id, start, end] per piece."""
    pool = request.app[STATE].pool
    if pool is None or not pool.config.work_log:
        return problem(404, "Not Found", "no work log (start the api with --work-log on)")
    return web.json_response({"entries": [list(entry) for entry in pool.work_log]})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "replica": state.config.replica_id,
            "in_flight": state.in_flight,
            "responses": {str(code): n for code, n in sorted(state.responses.items())},
            "keepalive_timeout_s": state.config.keepalive_timeout_s,
            "arrivals": state.arrivals.snapshot(),
            "connections": state.connections.snapshot(),
            **orders.stats(request.app),
            **({"workpool": state.pool.snapshot()} if state.pool else {}),
            **({"release": state.cold.snapshot()} if state.cold else {}),
        }
    )
