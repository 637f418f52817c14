"""stale-dns's measurements: the requests before the move, after it, and once the
resolver's TTL has passed, each with how many failed (anything but a 2xx/3xx)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labs.engine.analysis.metrics import Request, VariantResult, is_success
from labs.engine.analysis.windows import fault_events, fault_took_s
from labs.engine.model.spec import DeriveContext
from labs.stale_dns.scenario import MIN_FAILED_PCT, MIN_REQUESTS, SETTLE_S


@dataclass(frozen=True)
class Tally:
    requests: int
    failed: int

    @property
    def failed_pct(self) -> float:
        return 100 * self.failed / self.requests if self.requests else 0.0

    def __str__(self) -> str:
        return f"{self.failed:g} of {self.requests:g} failed ({self.failed_pct:.1f} %)"


@dataclass(frozen=True)
class StaleDnsNumbers:
    """Times in seconds since the run's first request; NaN when the event never came."""

    move_s: float
    """When the move began (the new api starting)."""
    moved_s: float
    """When it had finished: the name updated and the old api stopped."""
    reload_s: float
    before_requests: int
    """Requests that started before the move began ..."""
    before_failed: int
    after_requests: int
    """... once the move had finished ..."""
    after_failed: int
    after_failed_pct: float
    settled_requests: int
    """... SETTLE_S (the TTL + 1 s) or more after the move had finished."""
    settled_failed: int
    last_failure_s: float
    """The last failed request's start, in seconds after the move finished (NaN: none)."""

    @property
    def before(self) -> Tally:
        return Tally(self.before_requests, self.before_failed)

    @property
    def after(self) -> Tally:
        return Tally(self.after_requests, self.after_failed)

    @property
    def settled(self) -> Tally:
        return Tally(self.settled_requests, self.settled_failed)

    def stale(self) -> bool:
        """nginx kept the old address: >= MIN_FAILED_PCT of the requests after the move
        failed, none before it, over enough requests."""
        return (
            self.after.requests >= MIN_REQUESTS
            and self.after.failed_pct >= MIN_FAILED_PCT
            and self.before.failed == 0
        )

    def followed(self) -> bool:
        """nginx followed the move: no failure SETTLE_S after it, over enough requests."""
        return self.settled.requests >= MIN_REQUESTS and self.settled.failed == 0


def tally(requests: Sequence[Request], origin_s: float, start_s: float, end_s: float) -> Tally:
    hit = [r for r in requests if start_s <= r.start_s - origin_s < end_s]
    return Tally(len(hit), sum(not is_success(r.status) for r in hit))


def numbers(result: VariantResult, requests: Sequence[Request]) -> StaleDnsNumbers:
    move_s = _first(result, "move")
    moved_s = move_s + fault_took_s(result, "move")
    origin, end = result.origin_s, math.inf
    before = tally(requests, origin, -math.inf, end if math.isnan(move_s) else move_s)
    after = tally(requests, origin, moved_s, end)
    settled = tally(requests, origin, moved_s + SETTLE_S, end)
    failures = [r.start_s - origin - moved_s for r in requests if not is_success(r.status)]
    later = [t for t in failures if t >= 0]
    return StaleDnsNumbers(
        move_s=move_s,
        moved_s=moved_s,
        reload_s=_first(result, "reload"),
        before_requests=before.requests,  # without a move, every request is "before"
        before_failed=before.failed,
        after_requests=after.requests,
        after_failed=after.failed,
        after_failed_pct=round(after.failed_pct, 2),
        settled_requests=settled.requests,
        settled_failed=settled.failed,
        last_failure_s=round(max(later), 3) if later else math.nan,
    )


def _first(result: VariantResult, action: str) -> float:
    return next((e.t_s for e in fault_events(result) if e.action == action), math.nan)


def derive(ctx: DeriveContext) -> StaleDnsNumbers:
    return numbers(ctx.result, ctx.requests)
