"""The hedged variants' numbers: the client's latency and the api's own request count in
each phase (tail, then all slow).

Extra requests are counted from the api replicas' own arrivals (work requests per 100 ms
on the wall clock, `/admin/stats`), summed over the replicas, against the requests the
client started in the same window: what the api really received, whoever sent it, not
what the gateway says it sent. The gateway's hedge counters are kept beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labs.deadlines.scenario import ALL_SLOW_SETTLE_S, HEDGE_DELAY_MS
from labs.engine.analysis.metrics import Request, VariantResult, is_success, percentile
from labs.engine.analysis.stats import bucket_counts, downstream, every_replica, mapping, whole
from labs.engine.analysis.windows import Window, first_fault_s
from labs.engine.model.spec import DeriveContext

SETTLE_S = 1.0
"""Skipped at the start of the load (connections opening, users spawning)."""
END_MARGIN_S = 1.5
"""Left out at the end: requests in flight when Locust stops reach the api but are never
recorded by the client."""


@dataclass(frozen=True)
class Phase:
    """One phase's client requests and the api's arrivals (seconds since the first request)."""

    start_s: float
    end_s: float
    requests: int
    ok: int
    p50_ms: float
    p99_ms: float
    over_delay: int
    """Client requests that took longer than the hedge delay: each would want a hedge."""
    api_requests: int

    @property
    def extra_pct(self) -> float:
        return 100 * (self.api_requests / self.requests - 1) if self.requests else float("nan")

    @property
    def over_delay_pct(self) -> float:
        return 100 * self.over_delay / self.requests if self.requests else float("nan")


@dataclass(frozen=True)
class HedgeNumbers:
    """One hedged or unhedged run; results.json holds them as its `extra`."""

    tail: Phase
    """From SETTLE_S to the all-slow fault: a slow tail on every replica."""
    all_slow: Phase
    """From ALL_SLOW_SETTLE_S after the fault (the bucket's saved tokens spent) to the end."""
    tail_p99_ms: float
    tail_extra_pct: float
    all_slow_extra_pct: float
    hedges: int
    hedges_denied: int
    hedge_won: int
    """The gateway's own counters (whole run)."""


def api_arrivals(result: VariantResult, window: Window) -> int:
    """Work requests the api replicas received in `window` (seconds since the first request)."""
    total = 0
    for replica in every_replica(result, "api"):
        times, counts = bucket_counts(replica.get("arrivals"), result.origin_s)
        total += sum(c for t, c in zip(times, counts, strict=True) if window.holds(t))
    return total


def phase(result: VariantResult, requests: Sequence[Request], window: Window) -> Phase:
    inside = [r for r in requests if window.holds(r.start_s - result.origin_s)]
    latencies = [r.response_ms for r in inside]
    return Phase(
        start_s=window.start_s,
        end_s=window.end_s,
        requests=len(inside),
        ok=sum(is_success(r.status) for r in inside),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        over_delay=sum(ms > HEDGE_DELAY_MS for ms in latencies),
        api_requests=api_arrivals(result, window),
    )


def derive_hedged(ctx: DeriveContext) -> HedgeNumbers:
    result = ctx.result
    fault = first_fault_s(result)
    tail = phase(result, ctx.requests, Window(SETTLE_S, fault))
    slow = phase(
        result,
        ctx.requests,
        Window(fault + ALL_SLOW_SETTLE_S, result.duration_s - END_MARGIN_S),
    )
    hedge = mapping(downstream(result, "api").get("hedge"))
    return HedgeNumbers(
        tail=tail,
        all_slow=slow,
        tail_p99_ms=tail.p99_ms,
        tail_extra_pct=round(tail.extra_pct, 2),
        all_slow_extra_pct=round(slow.extra_pct, 2),
        hedges=whole(hedge.get("hedges")),
        hedges_denied=whole(hedge.get("denied")),
        hedge_won=whole(hedge.get("hedge_won")),
    )
