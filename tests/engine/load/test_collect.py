"""The runner's Collect step: files fetched from a live service before teardown."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from labs.engine.errors import LabError
from labs.engine.load.collect import collect_files
from labs.engine.model.spec import Collect
from labs.engine.topology.base import Endpoints


async def listing(request: web.Request) -> web.Response:
    if request.query.get("since") != "0":
        return web.Response(status=400)
    return web.json_response({"orders": [], "more": False})


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_get("/orders", listing)
    async with TestServer(app, host="127.0.0.1") as running:
        yield str(running.make_url("")).rstrip("/")


async def test_saves_the_body_of_one_replica(server, tmp_path: Path):
    endpoints = Endpoints("http://nginx", {"api": ["http://127.0.0.1:1", server]})
    await collect_files([Collect("api", "/orders?since=0", "orders.json", 1)], endpoints, tmp_path)
    assert (tmp_path / "orders.json").read_text() == '{"orders": [], "more": false}'


@pytest.mark.parametrize(
    ("collect", "message"),
    [
        (Collect("api", "/orders?since=1", "x.json"), "HTTP 400"),
        (Collect("api", "/orders?since=0", "x.json", replica=3), "no api replica 3"),
        (Collect("gateway", "/orders", "x.json"), "no gateway replica 0"),
    ],
)
async def test_failures_are_one_line_lab_errors(server, tmp_path: Path, collect, message):
    endpoints = Endpoints("http://nginx", {"api": [server]})
    with pytest.raises(LabError, match=message):
        await collect_files([collect], endpoints, tmp_path)
    assert not (tmp_path / "x.json").exists()


async def test_an_unreachable_replica_is_a_lab_error(tmp_path: Path):
    endpoints = Endpoints("http://nginx", {"api": ["http://127.0.0.1:1"]})
    with pytest.raises(LabError, match="cannot collect http://127.0.0.1:1/orders"):
        await collect_files([Collect("api", "/orders", "x.json")], endpoints, tmp_path)


async def test_an_optional_file_is_skipped_on_404_or_no_replica(server, tmp_path: Path):
    endpoints = Endpoints("http://nginx", {"api": [server]})
    wanted = [
        Collect("api", "/worklog", "a.json", optional=True),
        Collect("api", "/orders?since=0", "b.json", replica=2, optional=True),
    ]
    await collect_files(wanted, endpoints, tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LabError, match="HTTP 400"):
        await collect_files(
            [Collect("api", "/orders", "c.json", optional=True)], endpoints, tmp_path
        )
