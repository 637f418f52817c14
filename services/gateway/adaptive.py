"""An adaptive concurrency limit (AIMD, after Netflix's concurrency-limits) in front of the
gateway's downstream routes.

The gateway admits at most `limit` calls at once; the next one gets 503 (with a
Retry-After) at once, without touching the downstream. The limit adapts to what the
downstream can take:

- a call answered within `target_ms` (and not with an overload status) raises the limit
  by 1, but only while at least half of it is in use (a lightly loaded gateway learns
  nothing about the downstream's capacity, so its limit does not grow without bound);
- a call slower than `target_ms`, answered 502/503/504/429 or not at all multiplies the
  limit by `backoff`;
- the limit stays within [min_limit, max_limit].

Its queue at the downstream is then bounded by the limit, so a slow phase cannot leave a
backlog that outlives it. /admin/stats shows the limit now and over time (its value at
the end of each BUCKET_S tenth of a second on the wall-clock grid, like the api's
arrival buckets) and the calls admitted, rejected, succeeded and dropped.

Options: `--adaptive-limit on` and the `--adaptive-*` settings (add_arguments).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from services.common.problem import problem

BUCKET_S = 0.1
KEPT_BUCKETS = 6000
"""Ten minutes of the limit's history; older buckets are dropped."""
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that mean the downstream (or the gateway's call to it) was overloaded."""
RETRY_AFTER_S = 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class AdaptiveConfig:
    initial: int = 20
    min_limit: int = 1
    max_limit: int = 200
    target_ms: float = 500.0
    """A call slower than this is a sign of queueing: the limit shrinks."""
    backoff: float = 0.9
    """The limit is multiplied by this on each slow or failed call."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial <= self.max_limit:
            raise ValueError(
                "adaptive limit: need 1 <= min <= initial <= max; got "
                f"{self.min_limit}, {self.initial}, {self.max_limit}"
            )
        if not self.target_ms > 0:
            raise ValueError(f"adaptive limit: target must be > 0 ms; got {self.target_ms:g}")
        if not 0 < self.backoff < 1:
            raise ValueError(f"adaptive limit: backoff must be in (0, 1); got {self.backoff:g}")


class AdaptiveLimit:
    """The AIMD limit and its in-flight count; `clock` (epoch seconds) places the history."""

    def __init__(self, config: AdaptiveConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.limit = float(config.initial)
        self.in_flight = 0
        self.admitted = self.rejected = self.succeeded = self.dropped = 0
        self.lowest = self.highest = int(self.limit)
        self._first = 0
        """Bucket index (epoch seconds / BUCKET_S) of history[0]."""
        self._history: deque[int] = deque(maxlen=KEPT_BUCKETS)
        self._note()

    def try_acquire(self) -> bool:
        if self.in_flight >= int(self.limit):
            self.rejected += 1
            return False
        self.in_flight += 1
        self.admitted += 1
        return True

    def release(self, latency_s: float, status: int | None) -> None:
        """A call admitted by try_acquire ended after latency_s with `status` (None: no
        answer, e.g. the handler failed or was cancelled)."""
        self.in_flight -= 1
        slow = latency_s * 1000 > self.config.target_ms
        if status is None or status in OVERLOAD_STATUSES or slow:
            self.dropped += 1
            self.limit = max(float(self.config.min_limit), self.limit * self.config.backoff)
        else:
            self.succeeded += 1
            if 2 * (self.in_flight + 1) >= self.limit:
                self.limit = min(float(self.config.max_limit), self.limit + 1)
        self._note()

    def _note(self) -> None:
        """Record the limit as its bucket's value (the last one set in that bucket)."""
        value = int(self.limit)
        self.lowest, self.highest = min(self.lowest, value), max(self.highest, value)
        index = math.floor(self._clock() / BUCKET_S)
        if not self._history:
            self._first = index
            self._history.append(value)
            return
        last = self._first + len(self._history) - 1
        if index > last:
            for _ in range(min(index - last, KEPT_BUCKETS) - 1):
                self._history.append(self._history[-1])
            self._history.append(value)
            self._first = index - len(self._history) + 1
        elif index >= self._first:
            self._history[index - self._first] = value

    def snapshot(self) -> dict[str, object]:
        c = self.config
        return {
            "limit": int(self.limit),
            "in_flight": self.in_flight,
            "admitted": self.admitted,
            "rejected": self.rejected,
            "succeeded": self.succeeded,
            "dropped": self.dropped,
            "lowest": self.lowest,
            "highest": self.highest,
            "config": {
                "initial": c.initial,
                "min": c.min_limit,
                "max": c.max_limit,
                "target_ms": c.target_ms,
                "backoff": c.backoff,
            },
            "history": {
                "bucket_s": BUCKET_S,
                "start_epoch_s": round(self._first * BUCKET_S, 1),
                "limits": list(self._history),
            },
        }


LIMIT = web.AppKey("adaptive_limit", AdaptiveLimit)


def limited(handler: Handler, limit: AdaptiveLimit) -> Handler:
    """`handler` behind the limit: over it, a fast 503; else the call, then its verdict."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not limit.try_acquire():
            response = problem(
                503,
                "Service Unavailable",
                f"adaptive concurrency limit reached ({int(limit.limit)} calls in flight), "
                "call not made",
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        started = time.monotonic()
        status: int | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            limit.release(time.monotonic() - started, status)

    return wrapped


def snapshot(app: web.Application) -> dict[str, object] | None:
    """The limit's state for /admin/stats (None: no adaptive limit)."""
    limit = app.get(LIMIT)
    return limit.snapshot() if limit is not None else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("adaptive concurrency limit (services.gateway.adaptive)")
    d = AdaptiveConfig()
    group.add_argument("--adaptive-limit", choices=("on", "off"), default="off")
    group.add_argument("--adaptive-initial", type=int, default=d.initial, help="first limit")
    group.add_argument("--adaptive-min", type=int, default=d.min_limit, help="lowest limit")
    group.add_argument("--adaptive-max", type=int, default=d.max_limit, help="highest limit")
    group.add_argument(
        "--adaptive-target-ms", type=float, default=d.target_ms, help="slower calls: shrink"
    )
    group.add_argument(
        "--adaptive-backoff", type=float, default=d.backoff, help="shrink factor, in (0, 1)"
    )


def config_from(args: argparse.Namespace) -> AdaptiveConfig | None:
    """The options as a config (ValueError: a bad value); None when the limit is off."""
    if args.adaptive_limit != "on":
        return None
    return AdaptiveConfig(
        initial=args.adaptive_initial,
        min_limit=args.adaptive_min,
        max_limit=args.adaptive_max,
        target_ms=args.adaptive_target_ms,
        backoff=args.adaptive_backoff,
    )
