"""What the api does on SIGTERM in each --shutdown-mode, against the real process.

Each test starts `python -m services.api` on a free 127.0.0.1 port, talks raw HTTP/1.1
over keep-alive connections (so the test, not a client library's pool, decides which
connection a request goes on), sends SIGTERM and watches what each connection sees.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labs.engine.topology.ports import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass
class Api:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def terminate(self) -> float:
        """SIGTERM; returns when it was sent (time.monotonic())."""
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    def wait_exit(self, timeout: float = 10) -> float:
        self.process.wait(timeout=timeout)
        return time.monotonic()


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def send(self, method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        await self.writer.drain()

    async def response(self, timeout: float = 5) -> Response:
        async with asyncio.timeout(timeout):
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionResetError("closed before any response byte")
            headers = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Response(int(status_line.split()[1]), headers, body)

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        await self.send(method, path, body)
        return await self.response()

    async def closed_by_server(self, timeout: float) -> bool:
        """True when the server closes this (idle) connection within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def start_api(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    started: list[Api] = []

    async def start(mode: str, *args: str) -> Api:
        port = free_ports(1)[0]
        log = tmp_path / f"api-{port}.log"
        argv = [sys.executable, "-m", "services.api", "--port", str(port)]
        argv += ["--shutdown-mode", mode, *args]
        with log.open("w") as out:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        api = Api(process, port, log)
        started.append(api)
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, log.read_text()
            try:
                connection = await Connection.open(port)
            except OSError:
                assert time.monotonic() < deadline, "api did not start listening"
                await asyncio.sleep(0.05)
                continue
            assert (await connection.request("GET", "/readyz")).status == 200
            connection.close()
            return api

    yield start
    for api in started:
        if api.process.poll() is None:
            api.process.kill()
            api.process.wait(timeout=5)


async def refused(port: int) -> bool:
    try:
        connection = await Connection.open(port)
    except ConnectionRefusedError:
        return True
    connection.close()
    return False


# --- drain ----------------------------------------------------------------------------------


async def test_drain_finishes_in_flight_requests_and_exits_when_connections_are_gone(
    start_api,
):
    api = await start_api("drain", "--latency-ms", "600", "--shutdown-timeout", "5")
    get, post = await Connection.open(api.port), await Connection.open(api.port)
    await get.send("GET", "/work")
    await post.send("POST", "/work", b"order")
    await asyncio.sleep(0.2)
    sent = api.terminate()

    for connection in (get, post):
        answer = await connection.response()
        assert answer.status == 200, "an in-flight request finishes"
        assert answer.headers["connection"] == "close", "and tells the client to close"
        assert await connection.closed_by_server(1.0)
    exited = api.wait_exit()
    assert exited - sent < 3.0, "exits once its connections are gone, not at the deadline"
    assert api.process.returncode == 0
    assert "0 left at the deadline" in api.log.read_text()


async def test_drain_keeps_serving_an_idle_keepalive_connection_and_refuses_new_ones(
    start_api,
):
    api = await start_api("drain", "--shutdown-timeout", "5")
    pooled = await Connection.open(api.port)
    assert (await pooled.request("GET", "/healthz")).status == 200
    api.terminate()
    await asyncio.sleep(0.3)

    assert await refused(api.port), "the listener is closed: a proxy tries the next server"
    ready = await pooled.request("GET", "/readyz")
    assert ready.status == 503 and b'"draining": true' in ready.body
    assert ready.headers["connection"] == "close"
    assert await pooled.closed_by_server(1.0), "closed by the server only after its answer"
    api.wait_exit(timeout=3)
    assert api.process.returncode == 0


async def test_drain_waits_for_the_client_to_close_idle_connections_until_the_deadline(
    start_api,
):
    api = await start_api("drain", "--shutdown-timeout", "1.5")
    idle, closed_by_client = await Connection.open(api.port), await Connection.open(api.port)
    for connection in (idle, closed_by_client):
        assert (await connection.request("GET", "/healthz")).status == 200
    sent = api.terminate()

    assert not await idle.closed_by_server(0.5), "an idle connection is not closed at once"
    closed_by_client.close()  # what nginx does when its upstream keepalive_timeout ends
    assert await idle.closed_by_server(2.0), "the one left is closed at the deadline"
    exited = api.wait_exit()
    assert 1.4 < exited - sent < 3.5
    assert "1 left at the deadline" in api.log.read_text()


# --- default (aiohttp's run_app) and immediate ----------------------------------------------


async def test_default_closes_idle_keepalive_connections_at_once_and_finishes_in_flight(
    start_api,
):
    api = await start_api("default", "--latency-ms", "600")
    idle, busy = await Connection.open(api.port), await Connection.open(api.port)
    assert (await idle.request("GET", "/healthz")).status == 200
    await busy.send("POST", "/work", b"order")
    await asyncio.sleep(0.2)
    api.terminate()

    assert await idle.closed_by_server(1.0), "the idle connection a proxy may be reusing"
    answer = await busy.response()
    assert answer.status == 200
    assert "connection" not in answer.headers, "no Connection: close: a proxy pools it"
    assert await busy.closed_by_server(1.0), "and then it is closed"
    api.wait_exit()
    assert api.process.returncode == 0


async def test_immediate_exits_at_once_and_drops_in_flight_requests(start_api):
    api = await start_api("immediate", "--latency-ms", "600")
    busy = await Connection.open(api.port)
    await busy.send("POST", "/work", b"order")
    await asyncio.sleep(0.2)
    sent = api.terminate()

    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await busy.response()
    assert api.wait_exit() - sent < 1.0
    assert api.process.returncode == -signal.SIGTERM
