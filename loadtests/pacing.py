"""Pacing for load shapes whose users must fire together (no Locust import, so
it can be tested without gevent's monkey-patching)."""

from __future__ import annotations

from collections.abc import Sequence

GOLDEN = 0.6180339887498949
JOIN_WINDOW_S = 0.005
"""A user later than this after a burst fired (and not woken for it) waits for the next."""
POLL_S = 0.005
"""How often a user waiting on a burst that is still out looks again."""


def swept_offset(k: int, low: float, high: float) -> float:
    """The k-th offset of a golden-ratio sweep over [low, high].

    Every stretch of consecutive k covers the range evenly (unlike random draws,
    which clump), and every run sweeps the same sequence.
    """
    if high < low:
        raise ValueError("high must be >= low")
    return low + (high - low) * ((k * GOLDEN) % 1.0)


class BurstClock:
    """When the next burst fires: `gap + offset(k)` after the *median* response of
    burst k - 1 came back, the gap taken in turn from a cycle (e.g. 1 s, 1 s, 5 s). A
    backend arms its idle timer as it answers, and most of a burst's answers leave
    together, so the median marks when most pooled connections will be closed,
    however long the burst took on a busy machine.
    """

    def __init__(
        self,
        first: float,
        gap_s: float | Sequence[float],
        offset_low_s: float,
        offset_high_s: float,
    ):
        gaps = (gap_s,) if isinstance(gap_s, int | float) else tuple(gap_s)
        if not gaps:
            raise ValueError("at least one gap")
        if min(gaps) + offset_low_s <= 0:
            raise ValueError("gap + smallest offset must be > 0")
        swept_offset(0, offset_low_s, offset_high_s)
        self.gaps_s = gaps
        """Base gaps, in turn (one gap: every burst idles the same)."""
        self.low = offset_low_s
        self.high = offset_high_s
        self.index = 0
        self.fire_at = first
        self.outstanding = 0
        self._returned: list[float] = []

    def gap_before(self, k: int) -> float | None:
        """The base gap burst k waited for (None for the first burst)."""
        return self.gaps_s[(k - 1) % len(self.gaps_s)] if k else None

    def offset(self, k: int) -> float:
        """The swept offset added to burst k's gap (0 for the first burst)."""
        return swept_offset(k, self.low, self.high) if k else 0.0

    def wait_s(self, now: float, last: int, woke_for: int | None = None) -> float:
        """How long a user sleeps before it asks again; 0.0: it fires now, in burst
        `self.index`. A user fires once a burst: `last` is the burst it last fired in, and
        one whose answer is back before the rest of its burst's waits for the next (else a
        fast answer would fire again, on the connection it just freed). `woke_for` is the
        burst it slept until the fire of: it joins that one however late it woke (a stall
        delays every user alike), unless that burst is already over."""
        if self.index == last:
            return POLL_S
        if now < self.fire_at:
            return self.fire_at - now
        if woke_for == self.index or now <= self.fire_at + JOIN_WINDOW_S or not self.outstanding:
            return 0.0  # just fired, woken for it, or nobody joined it (users spawned late)
        return POLL_S

    def join(self) -> int:
        """A user fires in the current burst; returns its index."""
        self.outstanding += 1
        return self.index

    def done(self, now: float) -> bool:
        """A user's response came back; True when it was the burst's last one
        (the next burst is then scheduled)."""
        self.outstanding -= 1
        self._returned.append(now)
        if self.outstanding > 0:
            return False
        median = sorted(self._returned)[(len(self._returned) - 1) // 2]
        self._returned.clear()
        self.index += 1
        self.fire_at = median + (self.gap_before(self.index) or 0.0) + self.offset(self.index)
        return True
