"""In every variant of every lab, nginx answers /admin/* and /metrics itself (404)
and never forwards them: checked against a real nginx with each rendered config."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from labs.engine.model.catalog import all_labs
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.topology import nginx
from labs.engine.topology.ports import HOST, free_ports, is_listening

HIDDEN = (
    "/admin/faults", "/admin/stats", "/admin", "/metrics", "/metrics/",
    "/ADMIN/faults", "/Metrics", "/%61dmin/faults", "/work/../admin/faults", "//admin/faults",
)  # fmt: skip


class Backend:
    """Answers 200 to everything and remembers which paths reached it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        return web.Response(text="backend")


@pytest.fixture
async def backend():
    target = Backend()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    yield target, f"{HOST}:{runner.addresses[0][1]}"
    await runner.cleanup()


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    "lab, variant",
    [(lab, v) for lab in all_labs() for v in lab.variants],
    ids=lambda item: getattr(item, "name", str(item)),
)
async def test_admin_and_metrics_are_not_proxied(tmp_path: Path, backend, lab, variant):
    target, server = backend
    port = free_ports(1)[0]
    layout = nginx.NginxLayout(tmp_path / "prefix")
    text = nginx.render_config(
        variant.nginx, lab=lab.name, variant=variant.name, listen=f"{HOST}:{port}",
        servers=[server], layout=layout,
    )  # fmt: skip
    nginx.write_config(text, layout)
    group = ProcessGroup("hide-admin-test", tmp_path)
    group.start("nginx", nginx.nginx_argv(layout))
    try:
        base = f"http://{HOST}:{port}"
        for _ in range(200):
            if is_listening(port):
                break
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(fetch, f"{base}/healthz") == 200
        statuses = {path: await asyncio.to_thread(fetch, base + path) for path in HIDDEN}
    finally:
        group.stop_all()
    assert target.seen, "the public route reached the backend"
    assert all(status == 404 for status in statuses.values()), statuses
    assert not [p for p in target.seen if p.lower().startswith(("/admin", "/metrics"))]
