"""The live dashboard's routes, added to the control app of `lab up` (127.0.0.1 only,
its own port, never behind nginx).

    GET /              the page (static/index.html: uPlot charts, topology diagram)
    GET /static/...    its script, styles and the vendored uPlot (MIT, static/uPlot.LICENSE)
    GET /live/stream   Server-Sent Events: "init" (diagram, history, fault markers), then
                       a "tick" a second (one point, the markers)
    GET /live/state    the same as "init", as one JSON document
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from labs.engine.live.collector import Collector
from labs.engine.live.logtail import ContainerLogTail, LogTail
from labs.engine.model.spec import Variant
from labs.engine.topology import compose_file
from labs.engine.topology.base import Endpoints

STATIC = Path(__file__).parent / "static"
COLLECTOR = web.AppKey("collector", Collector)
QUEUE_SIZE = 30
KEEPALIVE_S = 15.0


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[COLLECTOR].init_message())


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    collector = request.app[COLLECTOR]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(QUEUE_SIZE)
    collector.listeners.add(queue)
    try:
        await response.write(sse("init", collector.init_message()))
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(sse("tick", message))
    except ConnectionResetError:  # the page went away
        return response
    finally:
        collector.listeners.discard(queue)


def install(app: web.Application, collector: Collector) -> None:
    app[COLLECTOR] = collector
    app.router.add_get("/", index)
    app.router.add_get("/live/state", state)
    app.router.add_get("/live/stream", stream)
    app.router.add_static("/static/", STATIC)


def attach(
    app: web.Application,
    topology: object,
    variant: Variant,
    endpoints: Endpoints,
    events: list[dict[str, object]],
    title: str,
    client: Callable[[], tuple[int, int] | None] | None = None,
) -> asyncio.Task[None]:
    """Add the dashboard to `app` and start sampling; cancel the task to stop it."""
    access, errors = log_tails(topology)
    collector = Collector(variant, endpoints, access, errors, events, title, client=client)
    collector.alive = process_alive(topology)
    install(app, collector)
    return asyncio.create_task(collector.run(), name="live-collector")


@dataclass
class Dashboard:
    """A dashboard served on its own 127.0.0.1 port (`lab run --live`)."""

    url: str
    task: asyncio.Task[None]
    runner: web.AppRunner

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.runner.cleanup()


async def serve_dashboard(
    topology: object,
    variant: Variant,
    endpoints: Endpoints,
    events: list[dict[str, object]],
    title: str,
    client: Callable[[], tuple[int, int] | None] | None = None,
) -> Dashboard:
    """The dashboard alone (no control routes), on a port the kernel picks."""
    app = web.Application()
    task = attach(app, topology, variant, endpoints, events, title, client)
    runner, url = await serve_app(app)
    return Dashboard(f"{url}/", task, runner)


def log_tails(topology: object) -> tuple[LogTail | ContainerLogTail | None, ...]:
    """nginx's access and error logs, followed from now on: files on this machine (local
    topology), or inside the nginx container (compose: read through the Docker API)."""
    containers = getattr(topology, "containers", None)
    if callable(containers):
        prefix = compose_file.NGINX_PREFIX

        found: list[object] = []

        def proxy() -> object | None:  # looked up once: faults never restart nginx
            if not found and (container := containers().get("nginx")) is not None:
                found.append(container)
            return found[0] if found else None

        return (
            ContainerLogTail(proxy, f"{prefix}/access.log"),
            ContainerLogTail(proxy, f"{prefix}/error.log"),
        )
    log_files = getattr(topology, "log_files", None)
    files = dict(log_files()) if callable(log_files) else {}
    access, errors = files.get("nginx-access"), files.get("nginx-error")
    return (LogTail(access) if access else None, LogTail(errors) if errors else None)


def process_alive(topology: object) -> Callable[[str], bool | None]:
    """Whether the local topology's process `name` runs (None: not known here; the
    compose topology answers through the replicas' admin endpoints alone)."""
    children = getattr(topology, "children", None)
    if children is None:
        return lambda _name: None

    def alive(name: str) -> bool | None:
        found = [child for child in children if child.name == name]
        return found[0].alive() if found else None

    return alive


async def serve_app(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve `app` on `host` and a port the kernel picks (no race with another
    process); return the runner (cleanup() stops it) and the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"
