"""A per-downstream bulkhead: a private connection pool plus a cap on in-flight calls.

With one shared ``ClientSession``, a slow dependency holds pooled connections and tasks until
every request through the gateway queues behind it. Giving each downstream its own pool
(``TCPConnector(limit=max_connections)``) and its own in-flight cap confines a slowdown to the
callers of that downstream.

The in-flight cap is checked before the pool is touched, and it rejects fast. aiohttp queues a
request that finds the pool full, and ``ClientTimeout.connect`` includes that queueing time, so
without the cap a saturated pool surfaces as connect timeouts that look like an unreachable
downstream (and would trip a circuit breaker). Keep ``max_in_flight <= max_connections`` so an
admitted call never waits for a pool slot, and saturation shows up as ``BulkheadFullError``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadFullError"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    max_connections: int
    """Size of this downstream's private connection pool."""
    max_in_flight: int
    """Concurrent calls admitted; the next one is rejected."""
    max_wait_s: float = 0.0
    """How long a call may wait for a free slot before rejection; 0 rejects immediately."""
    name: str = "downstream"
    base_url: str | None = None
    """Passed to the ``ClientSession``, so callers can use paths."""
    auto_decompress: bool = True
    """Passed to the ``ClientSession``; a proxy passes bodies through as they came (False)."""

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")


class BulkheadFullError(Exception):
    """Every slot was taken (for ``max_wait_s``); the call was not started."""

    def __init__(self, name: str, max_in_flight: int, waited_s: float) -> None:
        super().__init__(
            f"bulkhead {name!r} full: {max_in_flight} calls in flight, waited {waited_s:.3f}s"
        )
        self.name = name
        self.max_in_flight = max_in_flight
        self.waited_s = waited_s


class Bulkhead:
    """Use as ``async with Bulkhead(config) as bulkhead:``, or ``start()`` and ``close()``.

    Guard each call with ``async with bulkhead.slot():`` around the whole exchange, response body
    included, or with ``await bulkhead.run(fn, *args)``.
    """

    def __init__(self, config: BulkheadConfig) -> None:
        self.config = config
        self.in_flight = 0
        self.peak_in_flight = 0
        self.admitted = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        """Calls waiting (max_wait_s) for a slot, oldest first; a finishing call hands its
        slot to the oldest, so no newcomer overtakes them."""
        self._slot = _Slot(self)
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"bulkhead {self.name!r} is not started")
        return self._session

    async def start(self) -> None:
        """Create the session; needs a running event loop, hence not done in ``__init__``."""
        if self._session is not None:
            raise RuntimeError(f"bulkhead {self.name!r} is already started")
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            base_url=self.config.base_url,
            connector=connector,
            auto_decompress=self.config.auto_decompress,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def slot(self) -> _Slot:
        """Hold one in-flight slot for the block; raises ``BulkheadFullError`` if none is free.

        The slot is released however the block exits, cancellation included.
        """
        return self._slot

    async def run(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        async with self.slot():
            return await fn(*args, **kwargs)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for an admin endpoint or a metrics exporter."""
        return {
            "name": self.name,
            "max_connections": self.config.max_connections,
            "max_in_flight": self.config.max_in_flight,
            "max_wait_s": self.config.max_wait_s,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "admitted": self.admitted,
            "rejected": self.rejected,
            "started": self._session is not None,
        }

    async def _acquire(self) -> None:
        wait_s = self.config.max_wait_s
        if self.in_flight < self.config.max_in_flight and not self._waiters:
            # A free slot is taken without suspending, a lock or a timer: the common path
            # costs a comparison.
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        elif not (wait_s > 0 and await self._handed_a_slot(wait_s)):
            self.rejected += 1
            raise BulkheadFullError(self.name, self.config.max_in_flight, wait_s)
        self.admitted += 1

    async def _handed_a_slot(self, wait_s: float) -> bool:
        """Queue for a slot for up to `wait_s`; True once a finishing call hands one over
        (``in_flight`` already counts it)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_s):
                await waiter
            return True
        except TimeoutError:
            # Handed a slot just as the wait ran out: it is this call's.
            return waiter.done() and not waiter.cancelled()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1


class _Slot:
    """``async with bulkhead.slot():`` (a plain class: no generator, no task bookkeeping)."""

    __slots__ = ("_bulkhead",)

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead

    async def __aenter__(self) -> None:
        await self._bulkhead._acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bulkhead._release()
