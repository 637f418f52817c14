"""Connection pools for the downstreams: a plain one of their own, or one shared by all.

(A bulkhead's pool is in services.gateway.bulkhead.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp


def new_session(max_connections: int) -> aiohttp.ClientSession:
    """A session with its own pool; bodies are passed through as they came."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


class SharedPool:
    """One pool of connections for every downstream: each call holds a slot for its whole
    exchange, and calls wait for a slot in arrival order, whichever downstream they are for.

    This is a blocking connection pool (or a thread-per-request server's worker pool): a
    slow downstream's calls hold their slots for as long as it takes, and the calls behind
    them wait, fast downstreams' included. aiohttp's own `limit` alone would not show it:
    it hands an idle keep-alive connection to a host's next call even while calls to
    other hosts wait for a slot, so a steady fast downstream keeps its few warm
    connections. The wait for a slot counts against the connect timeout, as aiohttp's
    does (a TimeoutError, answered 504).
    """

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.session: aiohttp.ClientSession | None = None
        self.in_use = 0
        self.waiting = 0
        self.peak_waiting = 0
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None

    async def start(self) -> None:
        self.session = new_session(self.max_connections)

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    @contextlib.asynccontextmanager
    async def slot(self, wait_s: float | None) -> AsyncIterator[None]:
        """Hold a slot for the block; wait at most `wait_s` for one (None: as long as it takes)."""
        if self._slots is None:
            yield
            return
        self.waiting += 1
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            async with asyncio.timeout(wait_s):
                await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()

    def snapshot(self) -> dict[str, object]:
        return {
            "max_connections": self.max_connections,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "peak_waiting": self.peak_waiting,
        }
