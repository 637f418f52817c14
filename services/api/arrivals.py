"""Arrivals per 100 ms: how many work requests reached the api in each tenth of a second.

A retry storm is invisible in per-second numbers: synchronized retries arrive as spikes a
few tens of milliseconds wide. The buckets sit on the wall-clock grid (epoch seconds x 10),
so a lab can line them up with the client's records and the fault events without knowing
when the api started.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

BUCKET_S = 0.1
KEPT_BUCKETS = 6000
"""Ten minutes of history; older buckets are dropped."""


class Arrivals:
    def __init__(self, clock: Callable[[], float] = time.time, kept: int = KEPT_BUCKETS) -> None:
        self._clock = clock
        self._first = 0
        """Bucket index (epoch seconds / BUCKET_S) of counts[0]."""
        self._counts: deque[int] = deque(maxlen=kept)
        self.total = 0

    def record(self) -> None:
        index = int(self._clock() / BUCKET_S)
        self.total += 1
        if not self._counts:
            self._first = index
            self._counts.append(1)
            return
        last = self._first + len(self._counts) - 1
        if index > last:
            gap = min(index - last, self._counts.maxlen or 0)
            for _ in range(gap - 1):
                self._counts.append(0)
            self._counts.append(1)
            self._first = index - len(self._counts) + 1
        elif index >= self._first:
            self._counts[index - self._first] += 1
        # else: the clock stepped back past the kept history; the total still counts it.

    def snapshot(self) -> dict[str, object]:
        return {
            "bucket_s": BUCKET_S,
            "start_epoch_s": round(self._first * BUCKET_S, 1) if self._counts else None,
            "counts": list(self._counts),
            "total": self.total,
        }
