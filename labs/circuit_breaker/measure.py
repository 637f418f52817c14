"""The circuit-breaker lab's numbers: per endpoint and phase (before / during / after the
fault), the breaker's transitions lined up with the clients' requests, and the series the
report plots (stored in `extra`, so results.json can redraw them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labs.engine import series as S
from labs.engine.metrics import (
    Request,
    VariantResult,
    bucket_index,
    is_success,
    percentile,
    time_series,
)
from labs.engine.spec import DeriveContext

ENDPOINTS = {"/checkout": "payments", "/catalog": "catalog"}
"""Gateway route -> the downstream it calls."""
WARMUP_S = 1.0
"""The first second of load is left out of "before": connections are still being opened."""
TRIAL_MARGIN_S = 0.05
"""A request that starts this close to the end of an open period may reach the gateway
after it and become the half-open trial: it is not counted as "while open"."""
LATENCY_BUCKET_S = 0.5
STATE_STEP_S = 0.1
STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}
PHASES = ("before", "during", "after")


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


def phases(result: VariantResult) -> dict[str, Window]:
    """Seconds since the first request: before the fault (after the warm-up), during it
    (from the step that slows payments to the one that restores it), and after it."""
    windows = S.fault_windows(result)
    start, end = windows[0] if windows else (result.duration_s, result.duration_s)
    return {
        "before": Window(WARMUP_S, start),
        "during": Window(start, end),
        "after": Window(end, result.duration_s + 1),
    }


def _offset(request: Request, origin_s: float) -> float:
    return request.start_s - origin_s


def _error_kinds(requests: Sequence[Request]) -> dict[str, int]:
    kinds = Counter("no response" if r.status == 0 else str(r.status) for r in requests)
    return {k: n for k, n in sorted(kinds.items()) if k == "no response" or int(k) >= 400}


def endpoint_numbers(
    requests: Sequence[Request], origin_s: float, windows: Mapping[str, Window]
) -> dict[str, object]:
    numbers: dict[str, object] = {
        "requests": len(requests),
        "errors": sum(not is_success(r.status) for r in requests),
        "errors_by_kind": _error_kinds([r for r in requests if not is_success(r.status)]),
    }
    for phase, window in windows.items():
        inside = [r for r in requests if window.holds(_offset(r, origin_s))]
        latencies = [r.response_ms for r in inside]
        numbers[f"{phase}_requests"] = len(inside)
        numbers[f"{phase}_errors"] = sum(not is_success(r.status) for r in inside)
        numbers[f"{phase}_p50_ms"] = round(percentile(latencies, 50), 1)
        numbers[f"{phase}_p99_ms"] = round(percentile(latencies, 99), 1)
    return numbers


def gateway_downstream(result: VariantResult, name: str) -> Mapping[str, object]:
    replicas = result.services.get("gateway") or [{}]
    downstreams = replicas[0].get("downstreams", {}) if isinstance(replicas[0], Mapping) else {}
    found = downstreams.get(name, {}) if isinstance(downstreams, Mapping) else {}
    return found if isinstance(found, Mapping) else {}


@dataclass(frozen=True)
class Transition:
    t_s: float
    old: str
    new: str


def transitions(result: VariantResult, downstream: str = "payments") -> list[Transition]:
    """The breaker's transitions, in seconds since the first request (none: no breaker)."""
    breaker = gateway_downstream(result, downstream).get("breaker")
    if not isinstance(breaker, Mapping):
        return []
    return [
        Transition(round(float(t["epoch_s"]) - result.origin_s, 3), str(t["from"]), str(t["to"]))
        for t in breaker.get("transition_log", [])
    ]


def open_windows(moves: Sequence[Transition], reset_timeout_s: float) -> list[Window]:
    """While the circuit refused every call: from each opening for the reset timeout
    (it may stay open longer, until a call arrives, but the next call is the trial)."""
    return [
        Window(m.t_s, m.t_s + reset_timeout_s - TRIAL_MARGIN_S) for m in moves if m.new == "open"
    ]


def state_series(moves: Sequence[Transition], end_s: float) -> tuple[list[float], list[int]]:
    """The breaker's state every STATE_STEP_S from 0 to `end_s` (0 closed, 1 half-open,
    2 open), drawn as bars: a band where the circuit was not closed."""
    xs, ys = [], []
    state, index = "closed", 0
    for step in range(bucket_index(end_s, STATE_STEP_S) + 1):
        t = round(step * STATE_STEP_S, 3)
        while index < len(moves) and moves[index].t_s <= t:
            state = moves[index].new
            index += 1
        xs.append(t)
        ys.append(STATE_VALUES.get(state, 0))
    return xs, ys


def in_flight_series(result: VariantResult) -> dict[str, list[list[float]]]:
    """Calls in flight from the gateway to each downstream (waiting for a connection
    included), and the calls waiting for the shared pool, from the periodic samples."""
    lines: dict[str, list[list[float]]] = {}

    def add(label: str, t_s: object, value: object) -> None:
        line = lines.setdefault(label, [[], []])
        line[0].append(float(t_s))  # type: ignore[arg-type]
        line[1].append(float(value))  # type: ignore[arg-type]

    for sample in result.samples:
        stats = sample.get("stats")
        if sample.get("service") != "gateway" or not isinstance(stats, Mapping):
            continue
        for name, downstream in (stats.get("downstreams") or {}).items():
            add(f"to {name}", sample["t_s"], downstream.get("in_flight", 0))
        if isinstance(pool := stats.get("shared_pool"), Mapping):
            add("waiting for the shared pool", sample["t_s"], pool.get("waiting", 0))
    return lines


def latency_series(
    requests: Sequence[Request], origin_s: float
) -> dict[str, list[list[float | None]]]:
    """p99 per LATENCY_BUCKET_S by start time, per endpoint (None where nothing started)."""
    lines: dict[str, list[list[float | None]]] = {}
    for endpoint in ENDPOINTS:
        buckets = time_series(
            [r for r in requests if r.name == endpoint], LATENCY_BUCKET_S, origin=origin_s
        )
        lines[endpoint] = [
            [b.t_s for b in buckets],
            [b.p99_ms if b.requests else None for b in buckets],
        ]
    return lines


def derive(ctx: DeriveContext) -> dict[str, object]:
    result = ctx.result
    origin = result.origin_s
    windows = phases(result)
    numbers: dict[str, object] = {
        "fault_start_s": round(windows["during"].start_s, 3),
        "fault_end_s": round(windows["during"].end_s, 3),
    }
    for endpoint, downstream in ENDPOINTS.items():
        mine = [r for r in ctx.requests if r.name == endpoint]
        key = endpoint.strip("/")
        per_endpoint = endpoint_numbers(mine, origin, windows)
        per_endpoint["gateway_calls"] = dict(
            gateway_downstream(result, downstream).get("calls", {})
        )
        numbers[key] = per_endpoint
        for phase in PHASES:  # flat copies for the summary table and the checks
            numbers[f"{key}_p99_{phase}_ms"] = per_endpoint[f"{phase}_p99_ms"]
    payments = gateway_downstream(result, "payments")
    breaker = payments.get("breaker")
    moves = transitions(result)
    reset_s = float(breaker.get("reset_timeout_s", 0)) if isinstance(breaker, Mapping) else 0.0
    refused = open_windows(moves, reset_s)
    while_open = [
        r
        for r in ctx.requests
        if r.name == "/checkout" and any(w.holds(_offset(r, origin)) for w in refused)
    ]
    recovered = windows["during"].end_s
    closed_again = [m.t_s for m in moves if m.new == "closed" and m.t_s >= recovered]
    numbers.update(
        {
            "breaker": bool(breaker),
            "reset_timeout_s": reset_s,
            "transitions": [[m.t_s, m.old, m.new] for m in moves],
            "transition_counts": dict(Counter(f"{m.old}->{m.new}" for m in moves)),
            "final_state": moves[-1].new if moves else ("closed" if breaker else "none"),
            "checkout_while_open": len(while_open),
            "checkout_while_open_p99_ms": round(
                percentile([r.response_ms for r in while_open], 99), 1
            ),
            "closed_after_recovery_s": round(closed_again[0] - recovered, 3)
            if closed_again
            else -1.0,
            "peak_in_flight_payments": payments.get("peak_in_flight", 0),
            "latency_p99": latency_series(ctx.requests, origin),
            "in_flight": in_flight_series(result),
            "breaker_state": list(state_series(moves, result.duration_s)) if breaker else [],
        }
    )
    return numbers
