"""A worker-pool model of a request-serving process (the overload lab).

W workers; each work request holds one for S ms (an asyncio sleep, so the capacity is
W / S per second whatever the machine's CPU). A request that finds every worker busy
waits in a queue, served first-in-first-out (a servlet container's accept queue) or
last-in-first-out. Options that shed load instead of queueing it:

- a bounded queue: a request that finds it full gets 503 at once;
- a queue-time limit: a request that waited longer than this gets 503 when its turn
  comes (and the oldest are dropped first whenever a worker frees up);
- expired deadlines: a request whose client's timeout (`X-Timeout-Ms`, sent by the
  client, counted from the request's arrival) has passed gets 503 instead of a worker;
- hopeless deadlines (the deadlines lab): a request that could not finish before its
  deadline gets 503 at once -- at arrival by the work queued ahead of it, and again when
  a worker frees up by its own work (the pool knows both: work_ms x the factor).

With `work_log` on the pool also keeps every piece of work it did (request id from
`X-Request-Id`, start and end in epoch seconds), for matching against when each client
stopped waiting.

aiohttp keeps running a handler whose client went away (handler_cancellation is off by
default), so without shedding the pool works on requests nobody is waiting for: the
`late` counters say how many. The `work_factor` fault (services.api.faults) scales each
request's work while it is set.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from services.api.arrivals import Arrivals

TIMEOUT_HEADER = "X-Timeout-Ms"
REQUEST_ID_HEADER = "X-Request-Id"
Discipline = Literal["fifo", "lifo"]
SHED_REASONS = ("queue_full", "queue_time", "deadline")


@dataclass(frozen=True)
class PoolConfig:
    workers: int
    work_ms: float
    discipline: Discipline = "fifo"
    queue_limit: int = 0
    """Requests that may wait; one more gets 503 at once (0 = unbounded)."""
    max_queue_ms: float = 0.0
    """Longest wait for a worker before the request is shed (0 = no limit)."""
    shed_expired: bool = False
    """Shed a request whose client's deadline (X-Timeout-Ms) passed while it waited."""
    shed_hopeless: bool = False
    """Shed a request that could not finish its work before its client's deadline."""
    work_log: bool = False
    """Keep (request id, start, end) of every piece of work (`WorkPool.work_log`)."""

    def __post_init__(self) -> None:
        if self.workers < 1 or not 0 < self.work_ms <= 60_000:
            raise ValueError("--workers must be >= 1 and --work-ms within (0, 60000]")
        if self.discipline not in ("fifo", "lifo"):
            raise ValueError("--queue must be fifo or lifo")
        if self.queue_limit < 0 or self.max_queue_ms < 0:
            raise ValueError("--queue-limit and --max-queue-ms must be >= 0")

    @property
    def capacity_per_s(self) -> float:
        return self.workers * 1000 / self.work_ms


@dataclass
class _Waiter:
    turn: asyncio.Future[str]
    """Resolved with "" (a worker is this request's) or a shed reason."""
    queued_at: float
    deadline: float | None


@dataclass
class WorkPool:
    config: PoolConfig
    factor: Callable[[], float] = lambda: 1.0
    """The current work multiplier (the `work_factor` fault); read as each request starts."""
    clock: Callable[[], float] = time.monotonic
    busy: int = 0
    arrivals: int = 0
    started: int = 0
    completed: int = 0
    late: int = 0
    """Completed after the client's deadline: work nobody was waiting for any more."""
    shed: Counter[str] = field(default_factory=Counter)
    queue_max: int = 0
    completions: Arrivals = field(default_factory=Arrivals)
    """Completions per 100 ms, on the wall-clock grid."""
    late_completions: Arrivals = field(default_factory=Arrivals)
    work_log: list[tuple[str, float, float]] = field(default_factory=list)
    """(request id, start, end epoch seconds) of each piece of work, when config.work_log."""
    _queue: deque[_Waiter] = field(default_factory=deque)

    async def serve(self, timeout_ms: float | None = None, request_id: str = "") -> str:
        """Wait for a worker, do the work, give the worker back: "" when done, else
        the reason the request was shed (it then never held a worker)."""
        self.arrivals += 1
        now = self.clock()
        deadline = now + timeout_ms / 1000 if timeout_ms else None
        if self._hopeless(deadline, now + self._wait_estimate_s()):
            return self._count_shed("deadline")
        if self.busy >= self.config.workers or self._queue:
            if self.config.queue_limit and len(self._queue) >= self.config.queue_limit:
                return self._count_shed("queue_full")
            waiter = _Waiter(asyncio.get_running_loop().create_future(), now, deadline)
            self._queue.append(waiter)
            self.queue_max = max(self.queue_max, len(self._queue))
            self._dispatch()
            try:
                reason = await waiter.turn
            except asyncio.CancelledError:
                self._abandon(waiter)
                raise
            if reason:
                return reason
        else:
            self.busy += 1
        self.started += 1
        started = time.time()
        try:
            await asyncio.sleep(self._work_s())
            self.completed += 1
            self.completions.record()
            if deadline is not None and self.clock() > deadline:
                self.late += 1
                self.late_completions.record()
        finally:
            if self.config.work_log:
                self.work_log.append((request_id, started, time.time()))
            self.busy -= 1
            self._dispatch()
        return ""

    def _work_s(self) -> float:
        return self.config.work_ms * max(1.0, self.factor()) / 1000

    def _wait_estimate_s(self) -> float:
        """A new request's wait for a worker: the queue ahead of it, shared by the workers."""
        if self.busy < self.config.workers and not self._queue:
            return 0.0
        return (len(self._queue) + 1) / self.config.workers * self._work_s()

    def _hopeless(self, deadline: float | None, start: float) -> bool:
        """Work starting at `start` would end after the deadline (shed_hopeless only)."""
        if not self.config.shed_hopeless or deadline is None:
            return False
        return start + self._work_s() > deadline

    def _count_shed(self, reason: str) -> str:
        self.shed[reason] += 1
        return reason

    def _expired(self, waiter: _Waiter, now: float) -> str:
        limit = self.config.max_queue_ms
        if limit and (now - waiter.queued_at) * 1000 > limit:
            return "queue_time"
        if self.config.shed_expired and waiter.deadline is not None and now > waiter.deadline:
            return "deadline"
        if self._hopeless(waiter.deadline, now):
            return "deadline"
        return ""

    def _dispatch(self) -> None:
        """Shed the expired waiters, oldest first, then hand free workers out in the
        queue's order."""
        now = self.clock()
        while self._queue and (reason := self._expired(self._queue[0], now)):
            self._resolve(self._queue.popleft(), self._count_shed(reason))
        while self._queue and self.busy < self.config.workers:
            lifo = self.config.discipline == "lifo"
            waiter = self._queue.pop() if lifo else self._queue.popleft()
            if reason := self._expired(waiter, now):
                self._resolve(waiter, self._count_shed(reason))
                continue
            self.busy += 1
            self._resolve(waiter, "")

    @staticmethod
    def _resolve(waiter: _Waiter, reason: str) -> None:
        if not waiter.turn.done():
            waiter.turn.set_result(reason)

    def _abandon(self, waiter: _Waiter) -> None:
        """A cancelled handler: out of the queue, or its worker back if it had one."""
        if waiter in self._queue:
            self._queue.remove(waiter)
        elif waiter.turn.done() and not waiter.turn.cancelled() and waiter.turn.result() == "":
            self.busy -= 1
            self._dispatch()

    def snapshot(self) -> dict[str, object]:
        return {
            "workers": self.config.workers,
            "work_ms": self.config.work_ms,
            "capacity_per_s": round(self.config.capacity_per_s, 3),
            "discipline": self.config.discipline,
            "queue_limit": self.config.queue_limit,
            "max_queue_ms": self.config.max_queue_ms,
            "shed_expired": self.config.shed_expired,
            "shed_hopeless": self.config.shed_hopeless,
            "busy": self.busy,
            "queued": len(self._queue),
            "queue_max": self.queue_max,
            "arrivals": self.arrivals,
            "started": self.started,
            "completed": self.completed,
            "late": self.late,
            "shed": {reason: self.shed[reason] for reason in SHED_REASONS},
            "completions": self.completions.snapshot(),
            "late_completions": self.late_completions.snapshot(),
        }


def timeout_ms(header: str | None) -> float | None:
    """The client's timeout from X-Timeout-Ms (None: absent or not a positive number)."""
    try:
        value = float(header) if header else 0.0
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("worker pool (the overload lab; off unless --workers)")
    group.add_argument("--workers", type=int, default=0, help="workers (0 = no pool, default)")
    group.add_argument("--work-ms", type=float, default=20.0, help="work per request (ms)")
    group.add_argument("--queue", choices=("fifo", "lifo"), default="fifo", help="queue order")
    group.add_argument("--queue-limit", type=int, default=0, help="waiting requests (0 = any)")
    group.add_argument(
        "--max-queue-ms", type=float, default=0.0, help="shed after waiting this long (0 = never)"
    )
    group.add_argument(
        "--shed-expired",
        choices=("on", "off"),
        default="off",
        help=f"shed requests whose client's deadline ({TIMEOUT_HEADER}) passed in the queue",
    )
    group.add_argument(
        "--shed-hopeless",
        choices=("on", "off"),
        default="off",
        help="shed requests that could not finish before their deadline (at arrival and start)",
    )
    group.add_argument(
        "--work-log",
        choices=("on", "off"),
        default="off",
        help="keep each piece of work (X-Request-Id, start, end): GET /admin/worklog",
    )


def config_from_args(args: argparse.Namespace) -> PoolConfig | None:
    """The pool the command line asks for (None: off); ValueError on bad values."""
    if not args.workers:
        return None
    return PoolConfig(
        workers=args.workers,
        work_ms=args.work_ms,
        discipline=args.queue,
        queue_limit=args.queue_limit,
        max_queue_ms=args.max_queue_ms,
        shed_expired=args.shed_expired == "on",
        shed_hopeless=args.shed_hopeless == "on",
        work_log=args.work_log == "on",
    )
