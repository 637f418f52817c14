"""The circuit-breaker lab's numbers: per endpoint and phase (before / during / after the
fault), the breaker's transitions lined up with the clients' requests, and the series the
report plots.

`derive` returns them typed, as a `CircuitNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(CircuitNumbers)`) and its asdict()
view in `extra`, so results.json holds every number and can redraw the plots."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from labs.circuit_breaker.scenario import ENDPOINTS
from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import (
    Request,
    VariantResult,
    bucket_index,
    is_success,
    percentile,
    time_series,
)
from labs.engine.model.spec import DeriveContext

WARMUP_S = 1.0
"""The first second of load is left out of "before": connections are still being opened."""
TRIAL_MARGIN_S = 0.05
"""A request that starts this close to the end of an open period may reach the gateway
after it and become the half-open trial: it is not counted as "while open"."""
LATENCY_BUCKET_S = 0.5
STATE_STEP_S = 0.1
STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}
PHASES = ("before", "during", "after")
CYCLE = (("closed", "open"), ("open", "half-open"), ("half-open", "closed"))
"""The breaker's full cycle, in this order."""

Line = tuple[tuple[float, ...], tuple[float, ...]]
"""A plotted line as stored: (seconds since the first request, values)."""
GappedLine = tuple[tuple[float, ...], tuple[float | None, ...]]
"""A line with None where nothing was measured (drawn as a gap)."""
Band = tuple[tuple[float, ...], tuple[int, ...]] | tuple[()]
"""The breaker's state every STATE_STEP_S (0 closed, 1 half-open, 2 open); () = no breaker."""


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class PhaseNumbers:
    """One endpoint's requests that started in one phase."""

    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class EndpointNumbers:
    """One endpoint's numbers. The phases are flat fields (`before_p99_ms`), as
    results.json has them; `before`, `during` and `after` give them as `PhaseNumbers`."""

    requests: int
    errors: int
    errors_by_kind: Mapping[str, int]
    before_requests: int
    before_errors: int
    before_p50_ms: float
    before_p99_ms: float
    during_requests: int
    during_errors: int
    during_p50_ms: float
    during_p99_ms: float
    after_requests: int
    after_errors: int
    after_p50_ms: float
    after_p99_ms: float
    gateway_calls: Mapping[str, int]
    """The gateway's outcomes of its calls to this endpoint's downstream, by kind."""

    @property
    def before(self) -> PhaseNumbers:
        return PhaseNumbers(
            self.before_requests, self.before_errors, self.before_p50_ms, self.before_p99_ms
        )

    @property
    def during(self) -> PhaseNumbers:
        return PhaseNumbers(
            self.during_requests, self.during_errors, self.during_p50_ms, self.during_p99_ms
        )

    @property
    def after(self) -> PhaseNumbers:
        return PhaseNumbers(
            self.after_requests, self.after_errors, self.after_p50_ms, self.after_p99_ms
        )


class Transition(NamedTuple):
    """One move of the breaker. A named tuple, so results.json keeps it as
    [t_s, old, new]."""

    t_s: float
    old: str
    new: str


@dataclass(frozen=True)
class CircuitNumbers:
    """A variant's numbers (field order = results.json's `extra`)."""

    fault_start_s: float
    fault_end_s: float
    checkout: EndpointNumbers
    checkout_p99_before_ms: float
    """Flat copies of the endpoints' p99s, for the summary table (`extra.<name>`)."""
    checkout_p99_during_ms: float
    checkout_p99_after_ms: float
    catalog: EndpointNumbers
    catalog_p99_before_ms: float
    catalog_p99_during_ms: float
    catalog_p99_after_ms: float
    breaker: bool
    """Whether the gateway ran a breaker in front of payments."""
    reset_timeout_s: float
    transitions: tuple[Transition, ...]
    transition_counts: Mapping[str, int]
    """How many times the breaker made each move, e.g. {"closed->open": 2}."""
    final_state: str
    """The breaker's state at the end ("none" without a breaker)."""
    checkout_while_open: int
    """/checkout requests that started while the circuit refused every call."""
    checkout_while_open_p99_ms: float
    closed_after_recovery_s: float
    """Seconds from payments' recovery to the breaker closing again (-1: it did not)."""
    peak_in_flight_payments: int
    latency_p99: Mapping[str, GappedLine]
    """p99 per LATENCY_BUCKET_S by start time, per endpoint."""
    in_flight: Mapping[str, Line]
    """The gateway's calls in flight per downstream, and calls waiting for the shared pool."""
    breaker_state: Band

    def catalog_ratio(self) -> float:
        """/catalog's p99 during the fault over its p99 before it."""
        before, during = self.catalog.before_p99_ms, self.catalog.during_p99_ms
        return during / before if before else math.inf

    def catalog_unaffected(self, factor: float, min_requests: int) -> bool:
        """/catalog answers every request during the fault, its p99 within factor x
        before, both phases over >= min_requests requests (a catalog that fails fast
        while payments is slow is not unaffected)."""
        before, during = self.catalog.before, self.catalog.during
        enough = before.requests >= min_requests and during.requests >= min_requests
        return during.errors == 0 and during.p99_ms <= factor * before.p99_ms and enough

    def fails_fast(self, limit_ms: float, min_requests: int) -> bool:
        """/checkout's p99 while the circuit was open < limit_ms, over >= min_requests."""
        return (
            self.checkout_while_open >= min_requests and self.checkout_while_open_p99_ms < limit_ms
        )

    def cycle(self) -> tuple[tuple[str, str], ...]:
        """The moves of CYCLE found in order among the transitions."""
        found, rest = [], iter((m.old, m.new) for m in self.transitions)
        for move in CYCLE:
            if any(m == move for m in rest):
                found.append(move)
        return tuple(found)

    def cycles_and_closes(self, within_s: float) -> bool:
        """closed -> open -> half-open -> closed, closed again within `within_s` of
        payments recovering, and still closed at the end."""
        closed_s = self.closed_after_recovery_s
        return self.cycle() == CYCLE and 0 <= closed_s <= within_s and self.final_state == "closed"


# --- reading the run -------------------------------------------------------------------------


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


def phase_numbers(requests: Sequence[Request], origin_s: float, window: Window) -> PhaseNumbers:
    inside = [r for r in requests if window.holds(_offset(r, origin_s))]
    latencies = [r.response_ms for r in inside]
    return PhaseNumbers(
        requests=len(inside),
        errors=sum(not is_success(r.status) for r in inside),
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
    )


def endpoint_numbers(
    requests: Sequence[Request],
    origin_s: float,
    windows: Mapping[str, Window],
    gateway_calls: Mapping[str, int] | None = None,
) -> EndpointNumbers:
    before, during, after = (phase_numbers(requests, origin_s, windows[p]) for p in PHASES)
    return EndpointNumbers(
        requests=len(requests),
        errors=sum(not is_success(r.status) for r in requests),
        errors_by_kind=_error_kinds([r for r in requests if not is_success(r.status)]),
        before_requests=before.requests,
        before_errors=before.errors,
        before_p50_ms=before.p50_ms,
        before_p99_ms=before.p99_ms,
        during_requests=during.requests,
        during_errors=during.errors,
        during_p50_ms=during.p50_ms,
        during_p99_ms=during.p99_ms,
        after_requests=after.requests,
        after_errors=after.errors,
        after_p50_ms=after.p50_ms,
        after_p99_ms=after.p99_ms,
        gateway_calls=dict(gateway_calls or {}),
    )


# The gateway's /admin/stats is JSON: these read it with a clear error on a wrong type.


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _float(value: object) -> float:
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"expected a number, got {value!r}")


def _int(value: object) -> int:
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"expected a whole number, got {value!r}")


def gateway_downstream(result: VariantResult, name: str) -> Mapping[str, object]:
    """The gateway's stats for one downstream, at the end of the load ({}: none)."""
    replicas = result.services.get("gateway") or [{}]
    return _mapping(_mapping(_mapping(replicas[0]).get("downstreams")).get(name))


def transitions(result: VariantResult, downstream: str = "payments") -> tuple[Transition, ...]:
    """The breaker's transitions, in seconds since the first request (none: no breaker)."""
    breaker = gateway_downstream(result, downstream).get("breaker")
    if not isinstance(breaker, Mapping):
        return ()
    log = breaker.get("transition_log", [])
    return tuple(
        Transition(round(_float(t["epoch_s"]) - result.origin_s, 3), str(t["from"]), str(t["to"]))
        for t in (_mapping(entry) for entry in (log if isinstance(log, list) else []))
    )


def open_windows(moves: Sequence[Transition], reset_timeout_s: float) -> list[Window]:
    """While the circuit refused every call: from each opening for the reset timeout
    (it may stay open longer, until a call arrives, but the next call is the trial)."""
    return [
        Window(m.t_s, m.t_s + reset_timeout_s - TRIAL_MARGIN_S) for m in moves if m.new == "open"
    ]


def state_series(
    moves: Sequence[Transition], end_s: float
) -> tuple[tuple[float, ...], tuple[int, ...]]:
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
    return tuple(xs), tuple(ys)


def in_flight_series(result: VariantResult) -> dict[str, Line]:
    """Calls in flight from the gateway to each downstream (waiting for a connection
    included), and the calls waiting for the shared pool, from the periodic samples."""
    lines: dict[str, tuple[list[float], list[float]]] = {}

    def add(label: str, t_s: object, value: object) -> None:
        xs, ys = lines.setdefault(label, ([], []))
        xs.append(_float(t_s))
        ys.append(_float(value))

    for sample in result.samples:
        stats = sample.get("stats")
        if sample.get("service") != "gateway" or not isinstance(stats, Mapping):
            continue
        for name, downstream in _mapping(stats.get("downstreams")).items():
            add(f"to {name}", sample["t_s"], _mapping(downstream).get("in_flight", 0))
        if isinstance(pool := stats.get("shared_pool"), Mapping):
            add("waiting for the shared pool", sample["t_s"], pool.get("waiting", 0))
    return {label: (tuple(xs), tuple(ys)) for label, (xs, ys) in lines.items()}


def latency_series(requests: Sequence[Request], origin_s: float) -> dict[str, GappedLine]:
    """p99 per LATENCY_BUCKET_S by start time, per endpoint (None where nothing started)."""
    lines: dict[str, GappedLine] = {}
    for endpoint in ENDPOINTS:
        buckets = time_series(
            [r for r in requests if r.name == endpoint], LATENCY_BUCKET_S, origin=origin_s
        )
        lines[endpoint] = (
            tuple(b.t_s for b in buckets),
            tuple(b.p99_ms if b.requests else None for b in buckets),
        )
    return lines


def derive(ctx: DeriveContext) -> CircuitNumbers:
    result, origin = ctx.result, ctx.result.origin_s
    windows = phases(result)

    def endpoint(path: str) -> EndpointNumbers:
        calls = _mapping(gateway_downstream(result, ENDPOINTS[path]).get("calls"))
        mine = [r for r in ctx.requests if r.name == path]
        return endpoint_numbers(mine, origin, windows, {k: _int(n) for k, n in calls.items()})

    checkout, catalog = endpoint("/checkout"), endpoint("/catalog")
    payments = gateway_downstream(result, "payments")
    breaker = payments.get("breaker")
    moves = transitions(result)
    reset_s = _float(_mapping(breaker).get("reset_timeout_s", 0))
    refused = open_windows(moves, reset_s)
    while_open = [
        r
        for r in ctx.requests
        if r.name == "/checkout" and any(w.holds(_offset(r, origin)) for w in refused)
    ]
    recovered = windows["during"].end_s
    closed_again = [m.t_s for m in moves if m.new == "closed" and m.t_s >= recovered]
    return CircuitNumbers(
        fault_start_s=round(windows["during"].start_s, 3),
        fault_end_s=round(recovered, 3),
        checkout=checkout,
        checkout_p99_before_ms=checkout.before_p99_ms,
        checkout_p99_during_ms=checkout.during_p99_ms,
        checkout_p99_after_ms=checkout.after_p99_ms,
        catalog=catalog,
        catalog_p99_before_ms=catalog.before_p99_ms,
        catalog_p99_during_ms=catalog.during_p99_ms,
        catalog_p99_after_ms=catalog.after_p99_ms,
        breaker=bool(breaker),
        reset_timeout_s=reset_s,
        transitions=moves,
        transition_counts=dict(Counter(f"{m.old}->{m.new}" for m in moves)),
        final_state=moves[-1].new if moves else ("closed" if breaker else "none"),
        checkout_while_open=len(while_open),
        checkout_while_open_p99_ms=round(percentile([r.response_ms for r in while_open], 99), 1),
        closed_after_recovery_s=round(closed_again[0] - recovered, 3) if closed_again else -1.0,
        peak_in_flight_payments=_int(payments.get("peak_in_flight", 0)),
        latency_p99=latency_series(ctx.requests, origin),
        in_flight=in_flight_series(result),
        breaker_state=state_series(moves, result.duration_s) if breaker else (),
    )
