"""deploys' measurements, from the clients' records (Locust: start, status, latency and
the replica that answered) and the rollout's events (when each reload happened)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labs.deploys.scenario import GATE_INTERVAL_S, GATE_THRESHOLD, SPIKE_WINDOW_S
from labs.engine.analysis.metrics import Request, VariantResult, percentile
from labs.engine.analysis.stats import number
from labs.engine.model.spec import DeriveContext

V2_REPLICA = "api-2"
PROXY_FAILURES = (0, 502, 503, 504)
"""What a client gets when nginx has no live backend to give it (0: no answer at all)."""


@dataclass(frozen=True)
class DeploysNumbers:
    requests: int
    failed: int
    """Requests that got a 5xx or no answer: the users the deploy hurt."""
    proxy_failed: int
    """Of those, nginx's own failures (502/503/504, or no answer): the deploy's gap."""
    v2_answers: int
    v2_failed: int
    reloads: int
    """nginx reloads the rollout made (new weights)."""
    deploy_s: float
    """When the rollout's first action began (s after the first request)."""
    crossing_s: float
    """When v2's error rate over a trailing gate interval first exceeded the threshold
    (NaN: never)."""
    last_v2_s: float
    """When the last request v2 answered started (NaN: none)."""
    rollback_lag_s: float
    """last_v2_s - crossing_s: how long v2 kept getting traffic after it went bad."""
    p99_window_ms: float
    """p99 latency of the requests started in [deploy, deploy + SPIKE_WINDOW_S)."""
    decisions: tuple[str, ...]
    """The rollout's decisions, "t s: what", in order."""


def crossing(v2: Sequence[Request], window_s: float, threshold: float) -> float:
    """The first answer time (epoch) at which v2's error rate over the answers of the
    trailing `window_s` exceeded `threshold`; NaN when it never did."""
    answers = sorted((q.start_s + q.response_ms / 1000, q.status >= 500) for q in v2)
    errors = 0
    first = 0
    for last, (end, failed) in enumerate(answers):
        errors += failed
        while answers[first][0] < end - window_s:
            errors -= answers[first][1]
            first += 1
        if errors / (last - first + 1) > threshold:
            return end
    return math.nan


def decisions(result: VariantResult) -> tuple[str, ...]:
    lines = []
    for event in result.events:
        t = number(event.get("t_s"))
        if event.get("what") == "decision":
            details = {k: v for k, v in event.items() if k not in ("t_s", "what", "decision")}
            extra = ", ".join(f"{k} {v}" for k, v in details.items())
            lines.append(f"{t:.2f} s: {event.get('decision')}" + (f" ({extra})" if extra else ""))
        elif event.get("what") == "fault":
            took = number(event.get("took_s"))
            lines.append(f"{t:.2f} s: {event.get('label') or event.get('action')} ({took:g} s)")
    return tuple(lines)


def derive(ctx: DeriveContext) -> DeploysNumbers:
    result, requests = ctx.result, ctx.requests
    origin = result.origin_s
    actions = [number(e.get("t_s")) for e in result.events if e.get("what") == "fault"]
    deploy = min(actions) if actions else math.nan
    v2 = [q for q in requests if q.replica == V2_REPLICA]
    cross = crossing(v2, GATE_INTERVAL_S, GATE_THRESHOLD) - origin
    last_v2 = max((q.start_s for q in v2), default=math.nan) - origin
    window = [
        q.response_ms for q in requests if deploy <= q.start_s - origin < deploy + SPIKE_WINDOW_S
    ]
    return DeploysNumbers(
        requests=len(requests),
        failed=sum(1 for q in requests if q.status == 0 or q.status >= 500),
        proxy_failed=sum(1 for q in requests if q.status in PROXY_FAILURES),
        v2_answers=len(v2),
        v2_failed=sum(1 for q in v2 if q.status >= 500),
        reloads=sum(1 for e in result.events if e.get("action") == "weights"),
        deploy_s=round(deploy, 3),
        crossing_s=round(cross, 3),
        last_v2_s=round(last_v2, 3),
        rollback_lag_s=round(last_v2 - cross, 3),
        p99_window_ms=round(percentile(window, 99), 1) if window else math.nan,
        decisions=decisions(result),
    )


def v2_share(result: VariantResult) -> float:
    """v2's share of the answers, in % (for the table)."""
    n = result.numbers(DeploysNumbers)
    return 100 * n.v2_answers / n.requests if n.requests else math.nan
