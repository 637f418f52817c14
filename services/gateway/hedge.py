"""Hedged requests: a second copy of a call that is slow to answer, within a budget.

A call's first copy goes out at once; if it has not answered after `delay_s` (about the
downstream's p95 latency), a second copy goes to another replica, the first answer wins
and the other copy is cancelled. A tail that hits one request in twenty then costs about
`delay_s` instead of the whole tail (Dean and Barroso, "The Tail at Scale", 2013).

Hedges are extra load, and they fire exactly when the downstream is slow: when every
replica is slow, every call would send a second copy and double the load on an
overloaded service. The budget is a token bucket, as in gRPC's retry throttling: each
call adds `budget_ratio` of a token (up to `budget_max_tokens`), each hedge takes a whole
one, so hedges stay within `budget_ratio` of calls, evenly spread, with a burst of at
most `budget_max_tokens`. Unlike gRPC's throttling, which only failed attempts drain,
it counts the hedges themselves: answers that are slow but successful would never stop
gRPC's hedges.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Copy = Callable[[int], Awaitable[T]]
"""Sends copy number 0 (the first) or 1 (the hedge) of a call and returns its answer."""


@dataclass(frozen=True)
class HedgeConfig:
    delay_s: float
    """How long the first copy may take before the hedge goes out."""
    budget_ratio: float | None = 0.1
    """Tokens each call adds, i.e. hedges per call (None: no budget, every slow call hedges)."""
    budget_max_tokens: float = 10.0
    """The bucket's size: the most hedges in a burst."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.delay_s) or not 0 < self.delay_s <= 60:
            raise ValueError(f"hedge delay must be within 0..60 seconds; got {self.delay_s!r}")
        if self.budget_ratio is not None and not 0 < self.budget_ratio <= 1:
            raise ValueError(f"hedge budget ratio must be within 0..1; got {self.budget_ratio!r}")
        if not 1 <= self.budget_max_tokens <= 1000:
            raise ValueError(
                f"hedge budget tokens must be within 1..1000; got {self.budget_max_tokens!r}"
            )

    def budget(self) -> HedgeBudget | None:
        if self.budget_ratio is None:
            return None
        return HedgeBudget(self.budget_ratio, self.budget_max_tokens)


class HedgeBudget:
    """A token bucket, full at the start: `ratio` of a token per call, one per hedge."""

    def __init__(self, ratio: float, max_tokens: float) -> None:
        self.ratio, self.max_tokens, self.tokens = ratio, max_tokens, max_tokens

    def record_call(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.ratio)

    def try_acquire(self) -> bool:
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def snapshot(self) -> dict[str, float]:
        return {"ratio": self.ratio, "max_tokens": self.max_tokens, "tokens": self.tokens}


class Hedger:
    """Runs a downstream's calls hedged, and counts what hedging did."""

    def __init__(self, config: HedgeConfig) -> None:
        self.config = config
        self.budget = config.budget()
        self.calls = 0
        self.slow = 0
        """Calls whose first copy outlived the delay: each wanted a hedge."""
        self.hedges = 0
        self.denied = 0
        """Hedges the budget refused."""
        self.hedge_won = 0
        """Calls answered by the hedge rather than the first copy."""

    async def run(self, send: Copy[T]) -> T:
        self.calls += 1
        if self.budget is not None:
            self.budget.record_call()
        first = asyncio.ensure_future(send(0))
        try:
            done, _ = await asyncio.wait({first}, timeout=self.config.delay_s)
            if done:
                return first.result()
            self.slow += 1
            if self.budget is not None and not self.budget.try_acquire():
                self.denied += 1
                return await first
            self.hedges += 1
            second = asyncio.ensure_future(send(1))
            try:
                winner = await _first_answer(first, second)
            finally:
                await _cancel(second)
            self.hedge_won += winner is second
            return winner.result()
        finally:
            await _cancel(first)

    def snapshot(self) -> dict[str, object]:
        return {
            "delay_s": self.config.delay_s,
            "calls": self.calls,
            "slow": self.slow,
            "hedges": self.hedges,
            "denied": self.denied,
            "hedge_won": self.hedge_won,
            "budget": self.budget.snapshot() if self.budget else None,
        }


async def _first_answer(*copies: asyncio.Future[T]) -> asyncio.Future[T]:
    """The first copy to answer; a copy that failed (raised) counts only when every copy
    did, and then the first one's error is raised by `.result()`."""
    pending = set(copies)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for copy in copies:
            if copy in done and not copy.cancelled() and copy.exception() is None:
                return copy
    return copies[0]


async def _cancel(task: asyncio.Future[T]) -> None:
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
