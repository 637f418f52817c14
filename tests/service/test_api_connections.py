"""The api's per-connection counter: work requests on new vs reused keep-alive connections,
and the connections it closed first (the keepalive lab's rule, seen from the api)."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import aiohttp
import pytest

from services.api.app import ApiConfig
from services.api.connections import ConnectionReuse, closed_first
from tests.service.test_api import serve

LINUX_PROC = Path("/proc/net/tcp").is_file()


class Conn:
    """Stands in for a transport: any object that can be weakly referenced."""


def test_requests_on_a_connection_are_numbered_first_new_then_reused():
    reuse = ConnectionReuse(tables=())
    a, b = Conn(), Conn()
    assert [reuse.record(a), reuse.record(a), reuse.record(b), reuse.record(a)] == [1, 2, 1, 3]
    assert reuse.snapshot() == {"requests": 4, "reused": 2, "opened": 2, "closed_first": 0}


def test_a_closed_connection_is_forgotten_and_a_gone_one_not_counted():
    reuse = ConnectionReuse(tables=())
    conn = Conn()
    reuse.record(conn)
    del conn
    gc.collect()
    assert reuse.record(Conn()) == 1, "a new connection, whatever object it reuses"
    assert reuse.record(None) == 0
    assert (reuse.requests, reuse.reused, reuse.connections) == (2, 0, 2)


TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0100007F:1F90 0100007F:D2A4 06 00000000:00000000 03:00000DAD 00000000     0        0 0
   2: 0100007F:1F90 0100007F:D2A6 05 00000000:00000000 00:00000000 00000000     0        0 0
   3: 0100007F:D2A8 0100007F:1F90 06 00000000:00000000 03:00000DAD 00000000     0        0 0
   4: 0100007F:1F90 0100007F:D2AA 01 00000000:00000000 00:00000000 00000000     0        0 2
   5: 0100007F:1F91 0100007F:D2AC 06 00000000:00000000 03:00000DAD 00000000     0        0 0
"""


def test_closed_first_reads_the_ports_fin_wait_and_time_wait_sockets(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(TABLE)
    # port 0x1F90 = 8080: TIME_WAIT and FIN_WAIT2 count; the peer's TIME_WAIT (row 3, the
    # peer closed first), LISTEN, ESTABLISHED and another port's sockets do not
    assert closed_first(8080, [table, tmp_path / "missing"]) == {
        "0100007F:1F90 0100007F:D2A4",
        "0100007F:1F90 0100007F:D2A6",
    }
    assert closed_first(8080, [tmp_path / "missing"]) is None


async def connection_stats(url: str) -> dict:
    # its own connection, closed by this client: never work, never closed first by the api
    async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/admin/stats") as r:
        return (await r.json())["connections"]


async def test_stats_and_header_count_requests_on_reused_keepalive_connections():
    runner, url, _ = await serve(ApiConfig(keepalive_timeout_s=30))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            numbers = []
            for _ in range(3):  # one pooled connection, three requests
                async with session.post(f"{url}/work", data=b"{}") as r:
                    assert r.status == 200
                    numbers.append(r.headers["X-Connection-Requests"])
        assert numbers == ["1", "2", "3"]
        stats = await connection_stats(url)
        assert {k: stats[k] for k in ("requests", "reused", "opened")} == {
            "requests": 3, "reused": 2, "opened": 1,
        }  # fmt: skip
        # a second client: a new connection
        async with aiohttp.ClientSession() as other, other.get(f"{url}/work") as r:
            assert r.headers["X-Connection-Requests"] == "1"
        stats = await connection_stats(url)
        assert (stats["requests"], stats["reused"], stats["opened"]) == (4, 2, 2)
    finally:
        await runner.cleanup()


def one_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while not data.rstrip().endswith(b"}"):
        data += sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.skipif(not LINUX_PROC, reason="closed_first reads /proc/net/tcp (Linux)")
async def test_the_api_counts_the_idle_connections_it_closed_first():
    """The api's idle timeout (0.2 s) fires before the client gives up: the api closed
    first. A client that hangs up before the api's timeout: the client closed first."""
    runner, url, port = await serve(ApiConfig(keepalive_timeout_s=0.2))
    try:
        held = await asyncio.to_thread(one_request, port)
        await asyncio.sleep(0.6)  # the api closes it after 0.2 s idle
        assert held.recv(1) == b"", "the api closed the idle connection"
        held.close()
        stats = await connection_stats(url)
        assert (stats["opened"], stats["closed_first"]) == (1, 1)

        polite = await asyncio.to_thread(one_request, port)
        polite.close()  # the client gives up first
        await asyncio.sleep(0.3)
        stats = await connection_stats(url)
        assert (stats["opened"], stats["closed_first"]) == (2, 1)
    finally:
        await runner.cleanup()


async def test_a_connection_the_api_closed_when_idle_is_not_reused():
    """The client's pool keeps the connection, the api closes it after 0.2 s idle: the next
    request goes out on a new connection, and the counter sees a new one."""
    runner, url, _ = await serve(ApiConfig(keepalive_timeout_s=0.2))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            async with session.get(f"{url}/work") as r:
                assert r.status == 200
            await asyncio.sleep(0.5)
            async with session.get(f"{url}/work") as r:
                assert r.headers["X-Connection-Requests"] == "1"
        stats = await connection_stats(url)
        assert (stats["requests"], stats["reused"], stats["opened"]) == (2, 0, 2)
    finally:
        await runner.cleanup()
