"""The gateway: an aiohttp service that calls downstream apis with a resilience policy.

create_app wires the parts together: one Downstream (services.gateway.downstream: its
pool, bulkhead, breaker and retries) per configured downstream (services.gateway.config),
the routes of services.gateway.handlers (GET/POST /work -> `api`, /checkout ->
`payments`, /catalog -> `catalog`; /healthz, /readyz, /admin/stats) and /metrics, and
the pools' start and close with the app.
"""

from __future__ import annotations

import random

from aiohttp import web

from services.common import metrics
from services.common.problem import problem_errors
from services.gateway import adaptive
from services.gateway.config import GatewayConfig
from services.gateway.downstream import Downstream
from services.gateway.handlers import STATE, GatewayState, healthz, proxy_handler, readyz, stats
from services.gateway.pool import SharedPool

MAX_BODY_BYTES = 64 * 1024


def create_app(config: GatewayConfig) -> web.Application:
    rng = random.Random(config.seed)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[problem_errors])
    service_metrics = metrics.install(app, service="gateway")
    downstreams = {
        d.name: Downstream(d, random.Random(rng.random()), service_metrics, config.deadline)
        for d in config.downstreams
    }
    app[STATE] = GatewayState(config, downstreams)
    if config.adaptive is not None:
        app[adaptive.LIMIT] = adaptive.AdaptiveLimit(config.adaptive)
    for downstream in downstreams.values():
        handler = proxy_handler(downstream)
        if config.adaptive is not None:
            handler = adaptive.limited(handler, app[adaptive.LIMIT])
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
