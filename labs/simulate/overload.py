"""The overload lab's queue as a discrete-event model: does the system recover from a
trigger, or does the overload outlive it (a metastable failure)?

New requests arrive open-loop (Poisson, `rate_per_s`, for `arrivals_s`). The server has
`workers` workers; each request's work takes `work_ms` x the current factor (read as the
work starts); the trigger multiplies it by `factor` from `trigger_at_s` for `trigger_s`.
Waiting requests queue (FIFO or LIFO, optionally bounded: a full queue answers 503 at
once; optionally a waiting request whose client already timed out is dropped). The
server finishes what it started whether or not anyone still waits (aiohttp does). A
client's attempt times out after `timeout_s` and is retried at once on a timeout or a
503, up to `attempts` in all, if its retry budget or adaptive throttle allows (the lab's
own classes, loadtests/admission.py). Optionally a gateway with an adaptive concurrency
limit stands in front of the server (`GatewayLimit`). The network takes no time.

Judged like the lab (labs/overload/measure.py): goodput is requests answered in time (by
the answer's time) as a share of the window's new requests (by their arrival); "before"
from `warmup_s` to the trigger, "after" from `recovery_s` after the trigger to the end of
the arrivals; the ratio after / before says recovers (>= `recovered`), stays down
(<= `stays_down`) or in between. With the lab's seed the arrivals are the lab's own
(the same `Arrivals` stream).

Events: new arrivals (a seeded stream), timeouts and immediate retries (two deques: every
attempt is sent "now", so each stays sorted) and completions (a heap of <= workers). The
cost is O(attempts x log workers).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from loadtests.admission import AdaptiveThrottle, Arrivals, RetryBudget

if TYPE_CHECKING:
    from services.gateway.adaptive import AdaptiveLimit

Verdict = Literal["recovers", "stays down", "in between"]
INF = math.inf


@dataclass(frozen=True)
class GatewayLimit:
    """A gateway between the clients and the server with an AIMD concurrency limit (the
    lab's own class, services/gateway/adaptive.py): a call over the limit gets 503 at
    once; the gateway stops waiting for the server after `deadline_s` (a 504; the server
    works on)."""

    initial: int = 20
    min_limit: int = 1
    max_limit: int = 100
    target_ms: float = 500.0
    backoff: float = 0.9
    deadline_s: float = 2.0


@dataclass(frozen=True)
class OverloadParams:
    rate_per_s: float = 700.0
    workers: int = 20
    work_ms: float = 20.0
    timeout_s: float = 1.0
    attempts: int = 4
    factor: float = 3.0
    trigger_at_s: float = 10.0
    trigger_s: float = 3.0
    arrivals_s: float = 40.0
    queue: Literal["fifo", "lifo"] = "fifo"
    queue_limit: int = 0
    """0: unbounded."""
    shed_expired: bool = False
    retry_budget: bool = False
    throttle: bool = False
    throttle_k: float = 2.0
    throttle_window_s: float = 2.0
    gateway: GatewayLimit | None = None
    seed: int = 1
    warmup_s: float = 1.0
    recovery_s: float = 5.0
    recovered: float = 0.9
    stays_down: float = 0.2

    @property
    def capacity_per_s(self) -> float:
        return self.workers * 1000 / self.work_ms

    def check(self) -> None:
        """ValueError (one line) for parameters the model cannot mean."""
        positive = {
            "rate": self.rate_per_s,
            "workers": self.workers,
            "work-ms": self.work_ms,
            "timeout": self.timeout_s,
            "attempts": self.attempts,
            "arrivals": self.arrivals_s,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value:g}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor must be >= 1, got {self.factor:g}")
        if self.trigger_s < 0 or self.trigger_at_s < 0 or self.queue_limit < 0:
            raise ValueError("trigger times and the queue limit must be >= 0")
        if self.trigger_at_s + self.trigger_s + self.recovery_s >= self.arrivals_s:
            raise ValueError("the arrivals end before the recovery window starts")
        if self.gateway is not None and self.gateway.deadline_s < self.timeout_s:
            raise ValueError("the model's gateway must wait at least the clients' timeout")
        if self.rate_per_s * self.arrivals_s > 50_000_000:
            raise ValueError("more than 50 million requests: shorten the arrivals or the rate")


@dataclass(frozen=True)
class OverloadRun:
    params: OverloadParams
    requests: int
    attempts: int
    good: int
    api_completed: int
    api_late: int
    shed: int
    throttled: int
    goodput_before: float
    """Share of the window's new requests answered in time, per the answers' times."""
    goodput_after: float
    goodput_ratio: float
    verdict: Verdict


def simulate(p: OverloadParams, progress: Callable[[float], None] | None = None) -> OverloadRun:
    """One run; `progress(simulated seconds)` about every 5 simulated seconds."""
    p.check()
    work_s, trigger_end = p.work_ms / 1000, p.trigger_at_s + p.trigger_s
    budget = RetryBudget() if p.retry_budget else None
    throttle = AdaptiveThrottle(p.throttle_k, p.throttle_window_s, p.seed) if p.throttle else None
    arrivals = Arrivals(p.rate_per_s, 0.0, p.seed)
    gate = _gate(p.gateway)
    gate_s = p.gateway.deadline_s if p.gateway is not None else INF
    admitted: dict[int, float] = {}
    """Attempts the gateway waits for, and when it admitted them."""
    gate_deadlines: deque[tuple[float, int]] = deque()
    # Per attempt: its request, its deadline; per request: attempts so far, answered.
    request_of: list[int] = []
    deadline: list[float] = []
    tries: list[int] = []
    answered: list[bool] = []
    timeouts: deque[int] = deque()
    refused: deque[tuple[float, int]] = deque()
    running: list[tuple[float, int]] = []
    waiting: deque[int] = deque()
    take = waiting.pop if p.queue == "lifo" else waiting.popleft
    good_at: list[float] = []
    arrived_at: list[float] = []
    counts = {"shed": 0, "throttled": 0}

    workers, limit, timeout_s, factor = p.workers, p.queue_limit, p.timeout_s, p.factor
    trigger_at, push = p.trigger_at_s, heapq.heappush

    def send(now: float, request: int) -> None:
        if throttle is not None and not throttle.admit(now):
            counts["throttled"] += 1
            return
        tries[request] += 1
        attempt = len(request_of)
        request_of.append(request)
        deadline.append(now + timeout_s)
        if gate is not None:
            if not gate.try_acquire():
                counts["shed"] += 1
                refused.append((now, attempt))
                return
            admitted[attempt] = now
            gate_deadlines.append((now + gate_s, attempt))
        if len(running) < workers:
            start(now, attempt)
        elif limit and len(waiting) >= limit:
            counts["shed"] += 1
            refused.append((now, attempt))
            return
        else:
            waiting.append(attempt)
        timeouts.append(attempt)

    def work_of(now: float) -> float:
        return work_s * factor if trigger_at <= now < trigger_end else work_s

    def start(now: float, attempt: int) -> None:
        push(running, (now + work_of(now), attempt))

    def failed(now: float, attempt: int) -> None:
        request = request_of[attempt]
        if budget is not None:
            budget.record(False)
        if tries[request] < p.attempts and (budget is None or budget.allows_retry()):
            send(now, request)

    heappop, heapreplace, shed_expired = heapq.heappop, heapq.heapreplace, p.shed_expired
    completed = late = 0
    next_arrival, next_report = arrivals.next(), 5.0
    while True:
        t_done = running[0][0] if running else INF
        t_out = deadline[timeouts[0]] if timeouts else INF
        t_refused = refused[0][0] if refused else INF
        if gate_deadlines:
            while gate_deadlines and gate_deadlines[0][1] not in admitted:
                gate_deadlines.popleft()
            t_gate = gate_deadlines[0][0] if gate_deadlines else INF
            now = min(next_arrival, t_done, t_out, t_refused, t_gate)
        else:
            t_gate = INF
            now = min(next_arrival, t_done, t_out, t_refused)
        if now == INF:
            break
        if progress is not None and now >= next_report:
            progress(now)
            next_report += 5.0
        if now == t_done:
            attempt = running[0][1]
            completed += 1
            request = request_of[attempt]
            if gate is not None and attempt in admitted:
                gate.release(now - admitted.pop(attempt), 200)
            if now <= deadline[attempt] and not answered[request]:
                answered[request] = True
                good_at.append(now)
                if budget is not None:
                    budget.record(True)
                if throttle is not None:
                    throttle.accepted(now)
            elif now > deadline[attempt]:
                late += 1
            while waiting:
                attempt = take()
                if shed_expired and now > deadline[attempt]:
                    counts["shed"] += 1
                    continue
                heapreplace(running, (now + work_of(now), attempt))
                break
            else:
                heappop(running)
        elif now == t_gate:
            attempt = gate_deadlines.popleft()[1]
            if gate is not None:
                gate.release(now - admitted.pop(attempt), 504)
        elif now == t_refused:
            failed(now, refused.popleft()[1])
        elif now == t_out:
            attempt = timeouts.popleft()
            if not answered[request_of[attempt]]:
                failed(now, attempt)
        else:
            if now < p.arrivals_s:
                arrived_at.append(now)
                tries.append(0)
                answered.append(False)
                send(now, len(tries) - 1)
                next_arrival = arrivals.next()
            else:
                next_arrival = INF
    counts |= {"completed": completed, "late": late}
    return _judged(p, arrived_at, len(request_of), good_at, counts)


def _gate(gateway: GatewayLimit | None) -> AdaptiveLimit | None:
    if gateway is None:
        return None
    from services.gateway.adaptive import AdaptiveConfig, AdaptiveLimit  # imports aiohttp

    g = gateway
    config = AdaptiveConfig(g.initial, g.min_limit, g.max_limit, g.target_ms, g.backoff)
    return AdaptiveLimit(config, clock=lambda: 0.0)  # the limit's wall-clock history unused


def _judged(
    p: OverloadParams,
    arrived_at: list[float],
    attempts: int,
    good_at: list[float],
    counts: dict[str, int],
) -> OverloadRun:
    windows = ((p.warmup_s, p.trigger_at_s), (p.trigger_at_s + p.trigger_s + p.recovery_s,
                                              p.arrivals_s))  # fmt: skip
    shares = [_count(good_at, lo, hi) / max(1, _count(arrived_at, lo, hi)) for lo, hi in windows]
    before, after = shares
    ratio = after / before if before > 0 else 0.0
    return OverloadRun(
        p,
        len(arrived_at),
        attempts,
        len(good_at),
        counts["completed"],
        counts["late"],
        counts["shed"],
        counts["throttled"],
        before,
        after,
        ratio,
        verdict_of(ratio, p.recovered, p.stays_down),
    )


def verdict_of(ratio: float, recovered: float, stays_down: float) -> Verdict:
    """Goodput after / before, judged by the lab's thresholds."""
    if ratio >= recovered:
        return "recovers"
    return "stays down" if ratio <= stays_down else "in between"


def _count(times: list[float], lo: float, hi: float) -> int:
    """Of sorted times, how many in [lo, hi)."""
    return bisect.bisect_left(times, hi) - bisect.bisect_left(times, lo)


@dataclass(frozen=True)
class Boundary:
    """A sweep of trigger length x factor: each cell's goodput ratio and verdict."""

    trigger_s: tuple[float, ...]
    factors: tuple[float, ...]
    ratios: tuple[tuple[float, ...], ...]
    """ratios[i][j]: factors[i], trigger_s[j]."""
    verdicts: tuple[tuple[Verdict, ...], ...]


def sweep(
    p: OverloadParams,
    trigger_s: tuple[float, ...],
    factors: tuple[float, ...],
    progress: Callable[[str], None] | None = None,
) -> Boundary:
    ratios, verdicts = [], []
    for factor in factors:
        runs = [simulate(replace(p, factor=factor, trigger_s=d)) for d in trigger_s]
        ratios.append(tuple(r.goodput_ratio for r in runs))
        verdicts.append(tuple(r.verdict for r in runs))
        if progress is not None:
            progress(f"overload: factor x{factor:g} done ({len(trigger_s)} trigger lengths)")
    return Boundary(trigger_s, factors, tuple(ratios), tuple(verdicts))
