"""The api's per-connection counter: work requests on new vs reused keep-alive connections."""

from __future__ import annotations

import asyncio
import gc

import aiohttp

from services.api.app import ApiConfig
from services.api.connections import ConnectionReuse
from tests.service.test_api import serve


class Conn:
    """Stands in for a transport: any object that can be weakly referenced."""


def test_first_request_on_a_connection_is_new_the_next_ones_reused():
    reuse = ConnectionReuse()
    a, b = Conn(), Conn()
    assert [reuse.record(a), reuse.record(a), reuse.record(b), reuse.record(a)] == [
        False, True, False, True,
    ]  # fmt: skip
    assert reuse.snapshot() == {"requests": 4, "reused": 2, "opened": 2}


def test_a_closed_connection_is_forgotten_and_a_gone_one_not_counted():
    reuse = ConnectionReuse()
    conn = Conn()
    reuse.record(conn)
    del conn
    gc.collect()
    assert reuse.record(Conn()) is False, "a new connection, whatever object it reuses"
    assert reuse.record(None) is False
    assert reuse.snapshot() == {"requests": 2, "reused": 0, "opened": 2}


async def stats(url: str) -> dict:
    # its own connection: never counted as work
    async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/admin/stats") as r:
        return (await r.json())["connections"]


async def test_stats_count_requests_on_reused_keepalive_connections():
    runner, url, _ = await serve(ApiConfig(keepalive_timeout_s=30))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in range(3):  # one pooled connection, three requests
                async with session.post(f"{url}/work", data=b"{}") as r:
                    assert r.status == 200
        assert await stats(url) == {"requests": 3, "reused": 2, "opened": 1}
        # a second client: a new connection
        async with aiohttp.ClientSession() as other, other.get(f"{url}/work") as r:
            assert r.status == 200
        assert await stats(url) == {"requests": 4, "reused": 2, "opened": 2}
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
                assert r.status == 200
        assert await stats(url) == {"requests": 2, "reused": 0, "opened": 2}
    finally:
        await runner.cleanup()
