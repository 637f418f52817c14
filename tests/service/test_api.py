"""The api against a real aiohttp server on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.api.app import ApiConfig, create_app
from services.api.faults import Faults


async def serve(config: ApiConfig) -> tuple[web.AppRunner, str, int]:
    runner = web.AppRunner(create_app(config), keepalive_timeout=config.keepalive_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}", port


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    runner, url, _ = await serve(ApiConfig(replica_id="api-7", seed=1))
    async with aiohttp.ClientSession() as session:
        yield url, session
    await runner.cleanup()


async def test_get_and_post_work(api):
    url, session = api
    async with session.get(f"{url}/work") as r:
        assert r.status == 200
        assert r.headers["X-Replica"] == "api-7"
        assert (await r.json())["method"] == "GET"
    async with session.post(f"{url}/work", data=b"x" * 100) as r:
        assert r.status == 200
        assert (await r.json())["body_bytes"] == 100


async def test_health_and_readiness(api):
    url, session = api
    for path in ("/healthz", "/readyz"):
        async with session.get(f"{url}{path}") as r:
            assert r.status == 200


async def test_every_response_names_the_process_and_a_new_process_has_a_new_name(api):
    """X-Replica-Boot lets a client behind nginx count restarts (the graceful-shutdown
    lab's load ends once it has seen every replica come back)."""
    url, session = api
    boots = set()
    for method, path in (("GET", "/work"), ("GET", "/healthz"), ("GET", "/nope"),
                         ("PUT", "/admin/faults")):  # fmt: skip
        async with session.request(method, f"{url}{path}", json={}) as r:
            boots.add(r.headers["X-Replica-Boot"])
    assert len(boots) == 1 and len(boots.pop()) == 8
    runner, other, _ = await serve(ApiConfig(replica_id="api-7"))
    try:
        async with session.get(f"{url}/work") as first, session.get(f"{other}/work") as second:
            assert first.headers["X-Replica-Boot"] != second.headers["X-Replica-Boot"]
    finally:
        await runner.cleanup()


async def test_oversized_body_is_413_problem_json(api):
    url, session = api
    async with session.post(f"{url}/work", data=b"x" * (128 * 1024)) as r:
        assert r.status == 413
        assert r.content_type == "application/problem+json"


async def test_error_fault_set_at_run_time_and_reset(api):
    url, session = api
    async with session.put(f"{url}/admin/faults", json={"error_status": 503}) as r:
        assert r.status == 200
        assert (await r.json())["error_status"] == 503
    async with session.get(f"{url}/work") as r:
        assert r.status == 503
        assert r.content_type == "application/problem+json"
    async with session.get(f"{url}/healthz") as r:
        assert r.status == 200, "faults never touch health checks"
    async with session.delete(f"{url}/admin/faults") as r:
        assert r.status == 200
    async with session.get(f"{url}/work") as r:
        assert r.status == 200


async def test_error_rate_fails_about_that_share(api):
    url, session = api
    await session.put(f"{url}/admin/faults", json={"error_status": 500, "error_rate": 0.3})
    statuses = []
    for _ in range(300):
        async with session.get(f"{url}/work") as r:
            statuses.append(r.status)
    assert 60 <= statuses.count(500) <= 120
    assert set(statuses) == {200, 500}


async def test_latency_fault_delays_work(api):
    url, session = api
    await session.put(f"{url}/admin/faults", json={"latency_ms": 150})
    started = time.monotonic()
    async with session.get(f"{url}/work") as r:
        assert r.status == 200
    assert time.monotonic() - started >= 0.14


async def test_outage_window_then_recovery(api):
    url, session = api
    await session.put(f"{url}/admin/faults", json={"outage_s": 0.3})
    async with session.get(f"{url}/work") as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "1"
    await asyncio.sleep(0.35)
    async with session.get(f"{url}/work") as r:
        assert r.status == 200


async def test_capacity_limit_rejects_excess_concurrency(api):
    url, session = api
    await session.put(f"{url}/admin/faults", json={"max_concurrent": 2, "latency_ms": 200})

    async def one() -> int:
        async with session.get(f"{url}/work") as r:
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(5)))
    assert sorted(statuses) == [200, 200, 503, 503, 503]


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"not json", 400, "JSON object"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"bogus": 1}', 422, "unknown fault setting(s): bogus"),
        (b'{"error_status": 200}', 422, "error_status"),
        (b'{"error_rate": 2}', 422, "error_rate"),
        (b'{"latency_ms": "slow"}', 422, "must be a number"),
        (b'{"max_concurrent": 1.5}', 422, "whole number"),
        (b'{"latency_ms": true}', 422, "must be a number"),
    ],
)
async def test_bad_admin_input_is_4xx_problem_json_and_changes_nothing(api, body, status, fragment):
    url, session = api
    async with session.put(f"{url}/admin/faults", data=body) as r:
        assert r.status == status
        assert r.content_type == "application/problem+json"
        assert fragment in (await r.json())["detail"]
    async with session.get(f"{url}/admin/faults") as r:
        current = await r.json()
    assert current["latency_ms"] == 0 and current["error_status"] == 0


async def test_stats_count_responses(api):
    url, session = api
    await session.get(f"{url}/work")
    await session.put(f"{url}/admin/faults", json={"error_status": 502})
    await session.get(f"{url}/work")
    async with session.get(f"{url}/admin/stats") as r:
        stats = await r.json()
    assert stats["responses"] == {"200": 1, "502": 1}


def exchange(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("idle_timeout_s, closed", [(0.3, True), (5.0, False)])
async def test_keepalive_idle_timeout_closes_silently(idle_timeout_s, closed):
    """The api closes an idle keep-alive connection after its timeout, with no
    Connection: close or Keep-Alive hint: the peer only learns it by the FIN."""
    runner, _, port = await serve(ApiConfig(keepalive_timeout_s=idle_timeout_s))
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(True)
        response = await asyncio.to_thread(exchange, sock)
        assert response.startswith(b"HTTP/1.1 200")
        headers = response.split(b"\r\n\r\n")[0].lower()
        assert b"connection: close" not in headers and b"keep-alive:" not in headers
        await asyncio.sleep(0.6)
        sock.settimeout(0.2)
        try:
            eof = sock.recv(1) == b""
        except TimeoutError:
            eof = False
        assert eof is closed
        sock.close()
    finally:
        await runner.cleanup()


def test_faults_validate_at_construction():
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)


def test_command_line_rejects_bad_numbers_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "services.api", "--port", "70000"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


def test_command_line_port_in_use_is_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "services.api", "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr
