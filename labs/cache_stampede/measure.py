"""cache-stampede's measurements: the origin's own count of computations, grouped into
bursts (one per expiry), and the clients' latency and answers around the outage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labs.cache_stampede.scenario import BURST_GAP_S, WARMUP_S
from labs.engine.analysis import stats as S
from labs.engine.analysis.metrics import Request, VariantResult, bucket_index, percentile
from labs.engine.analysis.windows import fault_windows
from labs.engine.model.spec import DeriveContext

Line = tuple[tuple[float, ...], tuple[float, ...]]
BUCKET_S = 0.1


def bursts(starts: Sequence[float], gap_s: float = BURST_GAP_S) -> tuple[int, ...]:
    """Computations per burst: a burst ends when the next one starts more than `gap_s`
    after the one before it."""
    sizes: list[int] = []
    last = None
    for t in sorted(starts):
        if last is None or t - last > gap_s:
            sizes.append(0)
        sizes[-1] += 1
        last = t
    return tuple(sizes)


@dataclass(frozen=True)
class CacheNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    computations: int
    failed_computations: int
    cold_fill: int
    """Computations in the first burst: the cache was empty."""
    expiries: int
    """Bursts after the first: each one an expired answer refreshed."""
    per_expiry: float
    """Computations per expiry, on average."""
    per_expiry_max: int
    warm_requests: int
    warm_p50_ms: float
    warm_p99_ms: float
    """Over requests started after the warm-up (the cold fill is over)."""
    outage_requests: int
    outage_served_pct: float
    """Requests answered 200 while the origin was failing, in % (100: no outage)."""
    computations_per_s: Line


def _served_pct(requests: Sequence[Request]) -> float:
    if not requests:
        return 100.0
    return round(100 * sum(r.status == 200 for r in requests) / len(requests), 2)


def numbers(starts: Sequence[float], failed: int, result: VariantResult,
            requests: Sequence[Request]) -> CacheNumbers:  # fmt: skip
    sizes = bursts(starts)
    after = sizes[1:]
    origin = result.origin_s
    warm = [r.response_ms for r in requests if r.start_s - origin >= WARMUP_S]
    windows = fault_windows(result)
    outage = [r for r in requests if windows and windows[0].holds(r.start_s - origin)]
    counts: dict[int, int] = {}
    for t in starts:
        if t >= origin:
            index = bucket_index(t - origin, BUCKET_S)
            counts[index] = counts.get(index, 0) + 1
    steps = range(max(counts, default=-1) + 1)
    return CacheNumbers(
        computations=len(starts),
        failed_computations=failed,
        cold_fill=sizes[0] if sizes else 0,
        expiries=len(after),
        per_expiry=round(sum(after) / len(after), 2) if after else 0.0,
        per_expiry_max=max(after, default=0),
        warm_requests=len(warm),
        warm_p50_ms=round(percentile(warm, 50), 1),
        warm_p99_ms=round(percentile(warm, 99), 1),
        outage_requests=len(outage),
        outage_served_pct=_served_pct(outage),
        computations_per_s=(
            tuple(round(i * BUCKET_S, 3) for i in steps),
            tuple(counts.get(i, 0) / BUCKET_S for i in steps),
        ),
    )


def derive(ctx: DeriveContext) -> CacheNumbers:
    stats = S.service_stats(ctx.result, "origin")
    starts = [S.number(t) for t in S.items(stats.get("computation_starts"))]
    failed = S.whole(stats.get("failed_computations"))
    return numbers([t for t in starts if t == t], failed, ctx.result, ctx.requests)
