"""Backoff under contention: the model of Marc Brooker's "Exponential Backoff and Jitter"
(AWS Architecture Blog, 2015).

N clients start together. Each reads one shared row (its version) and then writes it
conditionally on that version (optimistic concurrency): the write succeeds only if no
other write committed since the read; otherwise the client backs off and starts over
with a new read. Every network hop takes |Normal(10 ms, 2 ms)|. Backoff: base 5 ms,
cap 2 s, the k-th retry's ceiling is min(cap, base x 2^k) (the first retry: base x 2^1):

- none: retry at once;
- exponential: wait the ceiling;
- full jitter: uniform(0, ceiling);
- equal jitter: ceiling / 2 + uniform(0, ceiling / 2);
- decorrelated jitter: min(cap, uniform(base, 3 x the previous wait)), from base.

Counted per run: calls (writes reaching the server, the blog's "work") and the time until
the last client has its success answer.

Only the server's order matters: a write arriving at w after its read at r succeeds iff
the last commit is before r, and all commits before w are known when writes are taken in
arrival order. So one heap of pending writes, one push and one pop per call: the cost is
O(calls x log N) (none: calls grow ~N^2). The blog's own simulator (a heap of every
message) makes the same decisions; this one keeps a quarter of its events.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("none", "exponential", "full-jitter", "equal-jitter", "decorrelated-jitter")
SLOW_N = 3000
"""From this N on a run takes seconds: progress reports each run."""
BLOCK = 1 << 16
"""Random draws are taken from numpy in blocks of this many."""


@dataclass(frozen=True)
class Network:
    base_s: float = 0.005
    cap_s: float = 2.0
    hop_mean_s: float = 0.010
    hop_sd_s: float = 0.002


@dataclass(frozen=True)
class RetryRun:
    strategy: str
    clients: int
    seed: int
    calls: int
    completion_s: float
    """Until the last client got its success answer (simulated seconds)."""


@dataclass(frozen=True)
class Spread:
    mean: float
    sd: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), sd, min(values), max(values))


@dataclass(frozen=True)
class RetrySummary:
    """One strategy at one N over R runs (seeds seed .. seed + R - 1)."""

    strategy: str
    clients: int
    runs: int
    calls: Spread
    completion_s: Spread
    calls_per_client: float


class _Draws:
    """|Normal| hops and uniforms from one seeded numpy generator, in blocks."""

    def __init__(self, seed: int, network: Network) -> None:
        self._rng = np.random.default_rng(seed)
        self._network = network
        self.hops = self._blocks(self._hop_block)
        self.uniforms = self._blocks(lambda: self._rng.random(BLOCK).tolist())

    def _hop_block(self) -> list[float]:
        n = self._network
        return np.abs(self._rng.normal(n.hop_mean_s, n.hop_sd_s, BLOCK)).tolist()

    @staticmethod
    def _blocks(draw: Callable[[], list[float]]) -> Iterator[float]:
        while True:
            yield from draw()


def simulate(strategy: str, clients: int, seed: int, network: Network = Network()) -> RetryRun:
    """One run: every client until its write succeeds."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    if clients < 1:
        raise ValueError("clients must be >= 1")
    draws = _Draws(seed, network)
    hop, uniform = draws.hops.__next__, draws.uniforms.__next__
    base, cap = network.base_s, network.cap_s
    failures = [0] * clients
    previous = [base] * clients
    pending: list[tuple[float, float, int]] = []
    for client in range(clients):
        read = hop()
        pending.append((read + hop() + hop(), read, client))
    heapq.heapify(pending)
    pop, push = heapq.heappop, heapq.heappush
    last_commit, calls, done = -math.inf, 0, 0.0
    while pending:
        write, read, client = pop(pending)
        calls += 1
        answered = write + hop()
        if last_commit < read:
            last_commit = write
            done = max(done, answered)
            continue
        k = failures[client] = failures[client] + 1
        ceiling = min(cap, base * 2.0**k) if k < 64 else cap
        if strategy == "none":
            wait = 0.0
        elif strategy == "exponential":
            wait = ceiling
        elif strategy == "full-jitter":
            wait = ceiling * uniform()
        elif strategy == "equal-jitter":
            wait = ceiling / 2 + ceiling / 2 * uniform()
        else:
            wait = min(cap, base + (previous[client] * 3 - base) * uniform())
            previous[client] = wait
        read = answered + wait + hop()
        push(pending, (read + hop() + hop(), read, client))
    return RetryRun(strategy, clients, seed, calls, done)


def summarize(runs: Sequence[RetryRun]) -> RetrySummary:
    first = runs[0]
    calls = Spread.of([r.calls for r in runs])
    return RetrySummary(
        first.strategy,
        first.clients,
        len(runs),
        calls,
        Spread.of([r.completion_s for r in runs]),
        calls.mean / first.clients,
    )


def sweep(
    strategies: Sequence[str],
    clients: Sequence[int],
    runs: int,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[RetrySummary]:
    """Every strategy at every N, R runs each (run i uses seed + i: the strategies
    see the same network draws)."""
    out = []
    for n in clients:
        for strategy in strategies:
            results = []
            for i in range(runs):
                results.append(simulate(strategy, n, seed + i))
                if progress is not None and n >= SLOW_N and i + 1 < runs:
                    progress(f"retries: {strategy} at N={n}: run {i + 1} of {runs} done")
            out.append(summarize(results))
            if progress is not None:
                progress(f"retries: {strategy} at N={n}: {runs} runs done")
    return out
