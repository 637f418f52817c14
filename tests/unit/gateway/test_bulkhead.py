"""Bulkhead: a private pool and an in-flight cap, against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from services.gateway.bulkhead import Bulkhead, BulkheadConfig, BulkheadFullError


@dataclass
class Downstream:
    """A slow dependency: /slow holds every request until the test opens the gate."""

    url: str = ""
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    active: int = 0
    peak_active: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)


DOWNSTREAM = web.AppKey("downstream", Downstream)


async def slow(request: web.Request) -> web.Response:
    downstream = request.app[DOWNSTREAM]
    downstream.requests += 1
    downstream.peers.add(request.transport.get_extra_info("peername"))
    downstream.active += 1
    downstream.peak_active = max(downstream.peak_active, downstream.active)
    try:
        await downstream.gate.wait()
    finally:
        downstream.active -= 1
    return web.Response(text="done")


@pytest.fixture
async def downstream() -> AsyncIterator[Downstream]:
    state = Downstream()
    app = web.Application()
    app[DOWNSTREAM] = state
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    yield state
    state.gate.set()
    await runner.cleanup()


@pytest.fixture
def make_bulkhead(downstream: Downstream) -> Callable[..., Bulkhead]:
    def make(**settings: float) -> Bulkhead:
        return Bulkhead(BulkheadConfig(name="api", base_url=downstream.url, **settings))  # type: ignore[arg-type]

    return make


async def wait_until(condition: Callable[[], bool], timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def fetch(bulkhead: Bulkhead) -> str:
    async with bulkhead.slot(), bulkhead.session.get("/slow") as response:
        return await response.text()


def hold(bulkhead: Bulkhead, n: int) -> list[asyncio.Task[str]]:
    return [asyncio.create_task(fetch(bulkhead)) for _ in range(n)]


async def test_rejects_the_next_call_fast_while_full(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    async with make_bulkhead(max_connections=2, max_in_flight=2) as bulkhead:
        holders = hold(bulkhead, 2)
        await wait_until(lambda: downstream.active == 2)

        started = time.perf_counter()
        # The timeout turns a regression (waiting for a slot) into a failure, not a hang.
        with pytest.raises(BulkheadFullError) as caught:
            async with asyncio.timeout(1.0):
                await fetch(bulkhead)
        elapsed = time.perf_counter() - started

        assert elapsed < 0.05
        assert caught.value.max_in_flight == 2
        assert downstream.requests == 2
        assert (bulkhead.in_flight, bulkhead.rejected) == (2, 1)
        assert all(not task.done() for task in holders)

        downstream.gate.set()
        assert await asyncio.gather(*holders) == ["done", "done"]
        assert bulkhead.in_flight == 0
        assert await fetch(bulkhead) == "done"


async def test_waits_up_to_max_wait_then_rejects(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    async with make_bulkhead(max_connections=1, max_in_flight=1, max_wait_s=0.1) as bulkhead:
        holders = hold(bulkhead, 1)
        await wait_until(lambda: downstream.active == 1)

        started = time.perf_counter()
        with pytest.raises(BulkheadFullError) as caught:
            await fetch(bulkhead)
        elapsed = time.perf_counter() - started

        assert 0.09 <= elapsed < 0.5
        assert caught.value.waited_s == 0.1
        assert bulkhead.rejected == 1
        downstream.gate.set()
        await asyncio.gather(*holders)


async def test_a_slot_freed_within_max_wait_admits_the_waiter(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    async with make_bulkhead(max_connections=1, max_in_flight=1, max_wait_s=0.5) as bulkhead:
        holders = hold(bulkhead, 1)
        await wait_until(lambda: downstream.active == 1)
        waiter = asyncio.create_task(fetch(bulkhead))
        await asyncio.sleep(0.02)
        assert downstream.requests == 1

        downstream.gate.set()
        assert await waiter == "done"
        await asyncio.gather(*holders)
        assert (bulkhead.admitted, bulkhead.rejected, bulkhead.in_flight) == (2, 0, 0)


async def test_releases_the_slot_when_the_call_raises() -> None:
    bulkhead = Bulkhead(BulkheadConfig(max_connections=1, max_in_flight=1))

    async def broken() -> None:
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        await bulkhead.run(broken)
    assert bulkhead.in_flight == 0

    async def fine(value: str) -> str:
        return value

    assert await bulkhead.run(fine, "again") == "again"
    assert (bulkhead.admitted, bulkhead.rejected) == (2, 0)


async def test_releases_the_slot_when_the_holder_is_cancelled(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    async with make_bulkhead(max_connections=1, max_in_flight=1) as bulkhead:
        (holder,) = hold(bulkhead, 1)
        await wait_until(lambda: downstream.active == 1)
        with pytest.raises(BulkheadFullError):
            await fetch(bulkhead)

        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert bulkhead.in_flight == 0

        downstream.gate.set()
        assert await fetch(bulkhead) == "done"


async def test_a_cancelled_waiter_does_not_leak_a_slot(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    async with make_bulkhead(max_connections=2, max_in_flight=2, max_wait_s=0.2) as bulkhead:
        holders = hold(bulkhead, 2)
        await wait_until(lambda: downstream.active == 2)
        waiter = asyncio.create_task(fetch(bulkhead))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

        downstream.gate.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_flight == 0

        # Both slots are free again: two calls are admitted, the third rejected.
        async with bulkhead.slot(), bulkhead.slot():
            started = time.perf_counter()
            with pytest.raises(BulkheadFullError):
                async with bulkhead.slot():
                    pass
            assert time.perf_counter() - started < 0.3


async def test_connection_pool_limit_is_honoured(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    # The in-flight cap is deliberately above the pool size, so the pool is what limits.
    async with make_bulkhead(max_connections=2, max_in_flight=5) as bulkhead:
        holders = hold(bulkhead, 5)
        await wait_until(lambda: bulkhead.in_flight == 5 and downstream.active == 2)
        await asyncio.sleep(0.05)
        assert (downstream.active, downstream.requests) == (2, 2)

        downstream.gate.set()
        assert await asyncio.gather(*holders) == ["done"] * 5
        assert downstream.peak_active == 2
        assert len(downstream.peers) == 2


async def test_pool_wait_counts_against_the_connect_timeout(
    downstream: Downstream, make_bulkhead: Callable[..., Bulkhead]
) -> None:
    """Why max_in_flight should not exceed max_connections: a healthy but busy pool turns
    into connect timeouts, indistinguishable from an unreachable downstream."""
    async with make_bulkhead(max_connections=1, max_in_flight=2) as bulkhead:
        holders = hold(bulkhead, 1)
        await wait_until(lambda: downstream.active == 1)

        async def queued_behind_the_pool() -> None:
            timeout = aiohttp.ClientTimeout(connect=0.1)
            async with bulkhead.session.get("/slow", timeout=timeout):
                pass

        with pytest.raises(aiohttp.ConnectionTimeoutError):
            await bulkhead.run(queued_behind_the_pool)
        assert downstream.requests == 1
        downstream.gate.set()
        await asyncio.gather(*holders)


async def test_lifecycle_and_snapshot() -> None:
    bulkhead = Bulkhead(BulkheadConfig(max_connections=3, max_in_flight=2, name="api"))
    with pytest.raises(RuntimeError):
        bulkhead.session  # noqa: B018

    await bulkhead.start()
    session = bulkhead.session
    connector = session.connector
    assert connector is not None
    assert connector.limit == 3
    with pytest.raises(RuntimeError):
        await bulkhead.start()

    async def inspect() -> dict[str, object]:
        return bulkhead.snapshot()

    snapshot = json.loads(json.dumps(await bulkhead.run(inspect)))
    assert snapshot == {
        "name": "api",
        "max_connections": 3,
        "max_in_flight": 2,
        "max_wait_s": 0.0,
        "in_flight": 1,
        "peak_in_flight": 1,
        "admitted": 1,
        "rejected": 0,
        "started": True,
    }

    await bulkhead.close()
    await bulkhead.close()
    assert session.closed
    assert bulkhead.snapshot()["started"] is False


@pytest.mark.parametrize(
    "bad",
    [
        {"max_connections": 0, "max_in_flight": 1},
        {"max_connections": 1, "max_in_flight": 0},
        {"max_connections": 1, "max_in_flight": 1, "max_wait_s": -1.0},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BulkheadConfig(**bad)  # type: ignore[arg-type]
