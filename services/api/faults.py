"""The api's fault switch: what to break, settable at start and at run time.

Faults apply to the work endpoints (lose_response_* to POST /orders) only; health
checks stay truthful so the topology can still tell a sick replica from a dead one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import asdict, dataclass, fields


class FaultError(ValueError):
    """A fault setting that is unknown or out of range."""


@dataclass
class Faults:
    latency_ms: float = 0.0
    """Added to every work request before it is answered (and to POST /orders before
    the commit)."""
    error_status: int = 0
    """Status returned instead of the work (0 = no injected errors)."""
    error_rate: float = 1.0
    """Share of work requests that get error_status when it is set."""
    outage_s: float = 0.0
    """Every work request gets 503 for this long from the moment it is set."""
    max_concurrent: int = 0
    """More work requests in flight than this get 503 (0 = unlimited)."""
    lose_response_rate: float = 0.0
    """Share of successful POST /orders whose response is lost after the order is committed."""
    lose_response_ms: float = 2000.0
    """How long a lost response is held back: longer than the client waits, so it gives up."""
    tail_rate: float = 0.0
    """Share of work requests whose injected latency is tail_factor x latency_ms (a slow
    tail: GC pauses, a cold cache, a noisy neighbour)."""
    tail_factor: float = 20.0
    work_factor: float = 0.0
    """The worker pool's work per request x this factor (services.api.workpool; 0 = not
    scaled)."""

    def __post_init__(self) -> None:
        self._outage_until = 0.0
        self._sleepers: set[asyncio.Future[None]] = set()
        self.validate()
        self._arm_outage()

    def validate(self) -> None:
        if not 0 <= self.latency_ms <= 600_000:
            raise FaultError("latency_ms must be between 0 and 600000")
        if self.error_status and not 400 <= self.error_status <= 599:
            raise FaultError("error_status must be 0 or an HTTP error status (400-599)")
        if not 0.0 <= self.error_rate <= 1.0:
            raise FaultError("error_rate must be between 0 and 1")
        if not 0 <= self.outage_s <= 3600:
            raise FaultError("outage_s must be between 0 and 3600")
        if not 0 <= self.max_concurrent <= 1_000_000:
            raise FaultError("max_concurrent must be between 0 and 1000000")
        if not 0.0 <= self.lose_response_rate <= 1.0:
            raise FaultError("lose_response_rate must be between 0 and 1")
        if not 0 <= self.lose_response_ms <= 600_000:
            raise FaultError("lose_response_ms must be between 0 and 600000")
        if not 0.0 <= self.tail_rate <= 1.0:
            raise FaultError("tail_rate must be between 0 and 1")
        if not 1 <= self.tail_factor <= 1000:
            raise FaultError("tail_factor must be between 1 and 1000")
        if self.work_factor and not 1 <= self.work_factor <= 100:
            raise FaultError("work_factor must be 0 (not scaled) or between 1 and 100")

    def _arm_outage(self) -> None:
        self._outage_until = time.monotonic() + self.outage_s if self.outage_s else 0.0
        if self.outage_s:
            for sleeper in self._sleepers:  # requests in flight fail together, as in a crash
                if not sleeper.done():
                    sleeper.set_result(None)

    async def delay(self, seconds: float) -> None:
        """Sleep `seconds` (injected latency), cut short if an outage starts meanwhile."""
        sleeper = asyncio.get_running_loop().create_future()
        timer = asyncio.get_running_loop().call_later(seconds, _wake, sleeper)
        self._sleepers.add(sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.discard(sleeper)

    def update(self, changes: dict[str, object]) -> None:
        """Apply a partial update atomically: all settings valid, or nothing changes."""
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise FaultError(f"unknown fault setting(s): {', '.join(unknown)}")
        candidate = asdict(self)
        for name, value in changes.items():
            wanted = int if known[name] in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultError(f"{name} must be a number")
            if not math.isfinite(value):
                raise FaultError(f"{name} must be a finite number")
            if wanted is int and value != int(value):
                raise FaultError(f"{name} must be a whole number")
            candidate[name] = wanted(value)
        Faults(**candidate)  # validates
        for name, value in candidate.items():
            setattr(self, name, value)
        if "outage_s" in changes:
            self._arm_outage()

    def in_outage(self) -> bool:
        return time.monotonic() < self._outage_until

    def outage_remaining_s(self) -> float:
        return max(0.0, self._outage_until - time.monotonic())

    def latency_s(self, rng: random.Random) -> float:
        """This request's injected latency: latency_ms, x tail_factor for the tail."""
        tail = self.tail_rate and rng.random() < self.tail_rate
        return self.latency_ms * (self.tail_factor if tail else 1) / 1000

    def should_fail(self, rng: random.Random) -> bool:
        return bool(self.error_status) and rng.random() < self.error_rate

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        data["outage_remaining_s"] = round(self.outage_remaining_s(), 3)
        return data


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
