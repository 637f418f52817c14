"""The rate-limit lab's numbers, per tenant, from every raw request.

"Accepted" is a 200, "limited" a 429. Rates are measured over the steady window,
from STEADY_FROM_S after the tenant's first request to its last, so the initial
burst a limiter allows (a full bucket) does not inflate the steady rate; the
burst is measured on its own, over the first BURST_WINDOW_S.

`derive` returns them typed, as a `RateLimitNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(RateLimitNumbers)`) and its
asdict() view in `extra`, so results.json holds every number and can redraw the plot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from labs.engine.analysis.metrics import Request, percentile
from labs.engine.analysis.stats import mapping, whole
from labs.engine.analysis.windows import FaultEvent, Window, fault_events
from labs.engine.model.spec import DeriveContext
from labs.rate_limit.scenario import LIMIT_RPS

STEADY_FROM_S = 2.0
BURST_WINDOW_S = 0.5
FAULT_SETTLE_S = 0.5
"""Skip this long after a fault event before measuring the rate after it."""
HEADERS_FILE = "rate_limit_headers.json"
"""What loadtests/tenants.py saw on 429s, per tenant: {"429", "retry_after", "problem_json"}."""
STOPS = ("stop", "kill")


@dataclass(frozen=True)
class TenantNumbers:
    """One tenant's requests (all zero when it sent none)."""

    requests: int = 0
    accepted: int = 0
    limited: int = 0
    errors: int = 0
    offered_rps: float = 0.0
    accepted_rps: float = 0.0
    """200s per second over the steady window."""
    accepted_first_window: int = 0
    """200s in the first BURST_WINDOW_S of the tenant's requests."""
    success_pct: float = 0.0
    p99_ms: float = 0.0
    accepted_per_s: tuple[int, ...] = ()
    """200s in each second since the tenant's first request (the plot)."""
    first_s: float = 0.0
    """Epoch time of the tenant's first request."""


@dataclass(frozen=True)
class Tenants:
    noisy: TenantNumbers
    quiet: TenantNumbers


@dataclass(frozen=True)
class HeaderCounts:
    """The 429s the clients got, and how many carried Retry-After and problem+json."""

    responses: int
    retry_after: int
    problem_json: int


@dataclass(frozen=True)
class RateLimitNumbers:
    """A variant's numbers (field order = results.json's `extra`)."""

    limit_rps: float
    noisy_offered_rps: float
    noisy_accepted_rps: float
    accepted_over_limit: float
    """noisy_accepted_rps / limit_rps, rounded (the summary table's column)."""
    quiet_success_pct: float
    quiet_p99_ms: float
    tenants: Tenants
    headers_of_429: Mapping[str, Mapping[str, int]]
    """Per tenant, as the locustfile counted them: {"429", "retry_after", "problem_json"}."""
    fault_at_s: float | None = None
    """When Redis (a part) was stopped, in seconds since the noisy tenant's first request;
    None (and the two rates too) in a variant without a stop or kill fault."""
    noisy_accepted_rps_before: float | None = None
    noisy_accepted_rps_after: float | None = None

    @property
    def times_limit(self) -> float:
        """The noisy tenant's steady accepted rate, in multiples of the limit."""
        return self.tenants.noisy.accepted_rps / self.limit_rps

    @property
    def before_times_limit(self) -> float:
        """Before the fault, in multiples of the limit (NaN: no fault)."""
        rps = self.noisy_accepted_rps_before
        return math.nan if rps is None else rps / self.limit_rps

    @property
    def after_times_limit(self) -> float:
        rps = self.noisy_accepted_rps_after
        return math.nan if rps is None else rps / self.limit_rps

    def holds_limit(self, tolerance: float) -> bool:
        return abs(self.times_limit - 1) <= tolerance

    def quiet_unharmed(self, min_pct: float, min_requests: int) -> bool:
        quiet = self.tenants.quiet
        return quiet.success_pct >= min_pct and quiet.requests >= min_requests

    def fails_open(self, tolerance: float, factor: float) -> bool:
        """The limit held before the fault and was gone after it."""
        return abs(self.before_times_limit - 1) <= tolerance and self.after_times_limit >= factor

    def headers(self) -> HeaderCounts:
        """The 429s over every tenant."""
        return summed(
            HeaderCounts(t.get("429", 0), t.get("retry_after", 0), t.get("problem_json", 0))
            for t in self.headers_of_429.values()
        )


def summed(counts: Iterable[HeaderCounts]) -> HeaderCounts:
    seen = tuple(counts)
    return HeaderCounts(
        sum(h.responses for h in seen),
        sum(h.retry_after for h in seen),
        sum(h.problem_json for h in seen),
    )


def rate(requests: Sequence[Request], window: Window, accepted: bool = True) -> float:
    """Requests (only 200s when `accepted`) started within the window, per second."""
    if window.end_s <= window.start_s:
        return 0.0
    n = sum(window.holds(r.start_s) and (r.status == 200 or not accepted) for r in requests)
    return n / window.duration_s


def tenant_numbers(requests: Sequence[Request]) -> TenantNumbers:
    if not requests:
        return TenantNumbers()
    first = min(r.start_s for r in requests)
    last = max(r.start_s for r in requests)
    steady = Window(first + STEADY_FROM_S, last)
    ok = [r for r in requests if r.status == 200]
    per_second: dict[int, int] = {}
    for r in ok:
        per_second[int(r.start_s - first)] = per_second.get(int(r.start_s - first), 0) + 1
    return TenantNumbers(
        requests=len(requests),
        accepted=len(ok),
        limited=sum(r.status == 429 for r in requests),
        errors=sum(r.status not in (200, 429) for r in requests),
        offered_rps=round(rate(requests, steady, accepted=False), 2),
        accepted_rps=round(rate(requests, steady), 2),
        accepted_first_window=sum(r.start_s < first + BURST_WINDOW_S for r in ok),
        success_pct=round(100 * len(ok) / len(requests), 2),
        p99_ms=round(percentile([r.response_ms for r in requests], 99), 1),
        accepted_per_s=tuple(per_second.get(s, 0) for s in range(int(last - first) + 1)),
        first_s=first,
    )


def before_after(
    noisy: Sequence[Request], origin_s: float, event: FaultEvent
) -> tuple[float, float, float]:
    """(fault_at_s, noisy accepted/s before the fault, after it): the steady window cut
    at a stop/kill fault, FAULT_SETTLE_S left out after it."""
    first = min(r.start_s for r in noisy)
    last = max(r.start_s for r in noisy)
    at = origin_s + event.t_s
    return (
        round(at - first, 2),
        round(rate(noisy, Window(first + STEADY_FROM_S, at)), 2),
        round(rate(noisy, Window(at + FAULT_SETTLE_S, last)), 2),
    )


def read_headers(ctx: DeriveContext) -> dict[str, dict[str, int]]:
    """The locustfile's counts of what 429s carried ({} when it wrote none)."""
    try:
        data = json.loads((ctx.out_dir / HEADERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {
        tenant: {key: whole(n) for key, n in mapping(counts).items()}
        for tenant, counts in mapping(data).items()
    }


def derive(ctx: DeriveContext) -> RateLimitNumbers:
    noisy_requests = [r for r in ctx.requests if r.name == "noisy"]
    noisy = tenant_numbers(noisy_requests)
    quiet = tenant_numbers([r for r in ctx.requests if r.name == "quiet"])
    stops = [e for e in fault_events(ctx.result) if e.action in STOPS]
    fault: tuple[float | None, float | None, float | None] = (None, None, None)
    if stops and noisy_requests:
        fault = before_after(noisy_requests, ctx.result.origin_s, stops[0])
    return RateLimitNumbers(
        limit_rps=LIMIT_RPS,
        noisy_offered_rps=noisy.offered_rps,
        noisy_accepted_rps=noisy.accepted_rps,
        accepted_over_limit=round(noisy.accepted_rps / LIMIT_RPS, 3),
        quiet_success_pct=quiet.success_pct,
        quiet_p99_ms=quiet.p99_ms,
        tenants=Tenants(noisy=noisy, quiet=quiet),
        headers_of_429=read_headers(ctx),
        fault_at_s=fault[0],
        noisy_accepted_rps_before=fault[1],
        noisy_accepted_rps_after=fault[2],
    )
