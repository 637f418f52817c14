"""The rate-limit lab's numbers, per tenant, from every raw request (Lab.derive).

"Accepted" is a 200, "limited" a 429. Rates are measured over the steady window,
from STEADY_FROM_S after the tenant's first request to its last, so the initial
burst a limiter allows (a full bucket) does not inflate the steady rate; the
burst is measured on its own, over the first BURST_WINDOW_S.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from labs.engine.analysis.metrics import Request, percentile
from labs.engine.model.spec import DeriveContext

TENANTS = ("noisy", "quiet")
STEADY_FROM_S = 2.0
BURST_WINDOW_S = 0.5
FAULT_SETTLE_S = 0.5
"""Skip this long after a fault event before measuring the rate after it."""
HEADERS_FILE = "rate_limit_headers.json"


def rate(requests: Sequence[Request], start: float, end: float, accepted: bool = True) -> float:
    """Requests (only 200s when `accepted`) started within [start, end), per second."""
    if end <= start:
        return 0.0
    n = sum(start <= r.start_s < end and (r.status == 200 or not accepted) for r in requests)
    return n / (end - start)


def tenant_numbers(requests: Sequence[Request]) -> dict[str, object]:
    if not requests:
        return {"requests": 0}
    first = min(r.start_s for r in requests)
    last = max(r.start_s for r in requests)
    steady = (first + STEADY_FROM_S, last)
    ok = [r for r in requests if r.status == 200]
    latencies = [r.response_ms for r in requests]
    per_second: dict[int, int] = {}
    for r in ok:
        per_second[int(r.start_s - first)] = per_second.get(int(r.start_s - first), 0) + 1
    seconds = int(last - first) + 1
    return {
        "requests": len(requests),
        "accepted": len(ok),
        "limited": sum(r.status == 429 for r in requests),
        "errors": sum(r.status not in (200, 429) for r in requests),
        "offered_rps": round(rate(requests, *steady, accepted=False), 2),
        "accepted_rps": round(rate(requests, *steady), 2),
        "accepted_first_window": sum(r.start_s < first + BURST_WINDOW_S for r in ok),
        "success_pct": round(100 * len(ok) / len(requests), 2),
        "p99_ms": round(percentile(latencies, 99), 1),
        "accepted_per_s": [per_second.get(s, 0) for s in range(seconds)],
        "first_s": first,
    }


def derive(limit_rps: float) -> object:
    """The derive hook for a lab whose tenants are each limited to `limit_rps`."""

    def hook(ctx: DeriveContext) -> Mapping[str, object]:
        by_tenant = {t: [r for r in ctx.requests if r.name == t] for t in TENANTS}
        numbers = {t: tenant_numbers(reqs) for t, reqs in by_tenant.items()}
        noisy, quiet = numbers["noisy"], numbers["quiet"]
        extra: dict[str, object] = {
            "limit_rps": limit_rps,
            "noisy_offered_rps": noisy.get("offered_rps", 0.0),
            "noisy_accepted_rps": noisy.get("accepted_rps", 0.0),
            "accepted_over_limit": round(float(noisy.get("accepted_rps", 0.0)) / limit_rps, 3),
            "quiet_success_pct": quiet.get("success_pct", 0.0),
            "quiet_p99_ms": quiet.get("p99_ms", 0.0),
            "tenants": numbers,
            "headers_of_429": _read_headers(ctx),
        }
        stops = [e for e in ctx.result.events if e.get("action") in ("stop", "kill")]
        if stops and by_tenant["noisy"]:
            extra.update(_before_after(by_tenant["noisy"], ctx.result.origin_s, stops[0]))
        return extra

    return hook


def _before_after(noisy: Sequence[Request], origin_s: float, event: Mapping) -> dict[str, float]:
    """Noisy accepted/s in the steady window before a stop/kill fault and after it."""
    first = min(r.start_s for r in noisy)
    last = max(r.start_s for r in noisy)
    at = origin_s + float(event["t_s"])
    return {
        "fault_at_s": round(at - first, 2),
        "noisy_accepted_rps_before": round(rate(noisy, first + STEADY_FROM_S, at), 2),
        "noisy_accepted_rps_after": round(rate(noisy, at + FAULT_SETTLE_S, last), 2),
    }


def _read_headers(ctx: DeriveContext) -> dict[str, dict[str, int]]:
    """What the locustfile saw on 429s, per tenant: {"429", "retry_after", "problem_json"}."""
    try:
        return json.loads((ctx.out_dir / HEADERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
