"""GET /healthz and GET /readyz, the same in every service that drains on SIGTERM.

Liveness (/healthz) says "do not restart me"; readiness says "send me new work". A
draining process (services.common.shutdown) is alive and not ready."""

from __future__ import annotations

from aiohttp import web

from services.common import shutdown


def install(app: web.Application, replica_id: str) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "replica": replica_id})

    async def readyz(request: web.Request) -> web.Response:
        if shutdown.draining(request.app):
            body = {"ready": False, "replica": replica_id, "draining": True}
            return web.json_response(body, status=503)
        return web.json_response({"ready": True, "replica": replica_id})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
