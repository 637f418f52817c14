"""deadlines' numbers: wasted work (the api's work log matched by request id to when each
client stopped waiting), each endpoint's latency in the slow phase, and each hop's calls
in flight over time.

Wasted work is measured the same way in every variant and never from the deadline
header (the broken variants do not send it): for every piece of api work (one worker
held for one request id, start and end on the api's clock) the part after the client's
request ended -- it gave up, or already had its answer -- is work nobody waited for.
Client and api run on one machine, so their wall clocks agree.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.deadlines.hedging import HedgeNumbers, derive_hedged
from labs.deadlines.scenario import HEDGE_VARIANTS
from labs.engine.analysis.metrics import Request, VariantResult, is_success, percentile
from labs.engine.analysis.stats import items, mapping, number, service_stats, whole
from labs.engine.analysis.windows import Window, fault_windows
from labs.engine.model.spec import Collect, DeriveContext

CALLS_FILE = "calls.csv"
"""Written by loadtests/deadlines.py: request_id, path, start_s, end_s, status."""
WORK_LOG = Collect("api", "/admin/worklog", "worklog.json", optional=True)
"""The api's work log: {"entries": [[request_id, start_epoch_s, end_epoch_s], ...]}."""
HOPS = ("edge", "orders", "api")
"""Whose calls in flight are plotted: each gateway's, and the api's (queued + working)."""

HEDGE_NAMES = frozenset(v.name for v in HEDGE_VARIANTS)
Line = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Work:
    request_id: str
    start_s: float
    end_s: float
    """Epoch seconds on the api's clock."""


@dataclass(frozen=True)
class Wasted:
    """The api's work that started in the slow phase, and the part nobody waited for."""

    pieces: int
    work_s: float
    wasted_s: float
    unmatched: int
    """Pieces whose request the client never finished (cut off by the end of the run)."""

    @property
    def pct(self) -> float:
        return 100 * self.wasted_s / self.work_s if self.work_s else float("nan")

    @property
    def useful_s(self) -> float:
        return self.work_s - self.wasted_s


@dataclass(frozen=True)
class DeadlineNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    slow_start_s: float
    slow_end_s: float
    checkout_slow_requests: int
    checkout_slow_ok: int
    checkout_slow_gave_up: int
    """Requests the client abandoned at its budget (no answer in time)."""
    checkout_slow_p50_ms: float
    checkout_slow_p99_ms: float
    catalog_before_p99_ms: float
    catalog_slow_requests: int
    catalog_slow_p99_ms: float
    api_work_pieces: int
    api_work_s: float
    wasted_work_s: float
    wasted_pct: float
    useful_work_s: float
    unmatched_work: int
    api_shed: int
    api_late: int
    budget_exhausted: int
    """Calls the gateways did not make: too little deadline budget left."""
    peak_in_flight: Mapping[str, int]
    """Most calls in flight per hop over the periodic samples."""
    in_flight: Mapping[str, Line]


def read_calls(path: Path) -> dict[str, float]:
    """request id -> when the client's request ended (epoch seconds)."""
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {row["request_id"]: float(row["end_s"]) for row in csv.DictReader(handle)}


def read_work(path: Path) -> tuple[Work, ...]:
    if not path.exists():
        return ()
    entries = items(mapping(json.loads(path.read_text())).get("entries"))
    pieces = (items(e) for e in entries)
    return tuple(
        Work(str(p[0]), number(p[1]), number(p[2])) for p in pieces if len(p) == 3 and p[0]
    )


def wasted_work(work: Sequence[Work], ended: Mapping[str, float], window: Window) -> Wasted:
    """`window` in epoch seconds: the pieces that started in it."""
    pieces = [w for w in work if window.holds(w.start_s)]
    wasted, unmatched = 0.0, 0
    for w in pieces:
        end = ended.get(w.request_id)
        if end is None:
            unmatched += 1
            continue
        wasted += max(0.0, w.end_s - max(w.start_s, end))
    return Wasted(len(pieces), sum(w.end_s - w.start_s for w in pieces), wasted, unmatched)


def slow_window(result: VariantResult) -> Window:
    """The slow phase in seconds since the first request (an empty window: no fault)."""
    windows = fault_windows(result)
    return windows[0] if windows else Window(result.duration_s, result.duration_s)


def _started_in(
    requests: Sequence[Request], name: str, window: Window, origin: float
) -> list[Request]:
    return [r for r in requests if r.name == name and window.holds(r.start_s - origin)]


def in_flight_series(result: VariantResult) -> dict[str, Line]:
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for sample in result.samples:
        service = str(sample.get("service") or "")
        if service in HOPS:
            xs, ys = lines.setdefault(service, ([], []))
            xs.append(number(sample.get("t_s")))
            ys.append(number(mapping(sample.get("stats")).get("in_flight"), 0.0))
    return {label: (tuple(xs), tuple(ys)) for label, (xs, ys) in lines.items()}


def budget_exhausted(result: VariantResult) -> int:
    total = 0
    for hop in ("edge", "orders"):
        for calls in mapping(service_stats(result, hop).get("downstreams")).values():
            total += whole(mapping(mapping(calls).get("calls")).get("budget_exhausted"))
    return total


def derive(ctx: DeriveContext) -> DeadlineNumbers | HedgeNumbers:
    if ctx.variant.name in HEDGE_NAMES:
        return derive_hedged(ctx)
    return derive_deadlines(ctx)


def derive_deadlines(ctx: DeriveContext) -> DeadlineNumbers:
    result, origin = ctx.result, ctx.result.origin_s
    slow = slow_window(result)
    checkout = _started_in(ctx.requests, "/checkout", slow, origin)
    catalog = _started_in(ctx.requests, "/catalog", slow, origin)
    catalog_before = _started_in(ctx.requests, "/catalog", Window(0.0, slow.start_s), origin)
    epoch_window = Window(origin + slow.start_s, origin + slow.end_s)
    wasted = wasted_work(
        read_work(ctx.out_dir / WORK_LOG.file), read_calls(ctx.out_dir / CALLS_FILE), epoch_window
    )
    pool = mapping(service_stats(result, "api").get("workpool"))
    in_flight = in_flight_series(result)
    return DeadlineNumbers(
        slow_start_s=slow.start_s,
        slow_end_s=slow.end_s,
        checkout_slow_requests=len(checkout),
        checkout_slow_ok=sum(is_success(r.status) for r in checkout),
        checkout_slow_gave_up=sum(r.status == 0 for r in checkout),
        checkout_slow_p50_ms=percentile([r.response_ms for r in checkout], 50),
        checkout_slow_p99_ms=percentile([r.response_ms for r in checkout], 99),
        catalog_before_p99_ms=percentile([r.response_ms for r in catalog_before], 99),
        catalog_slow_requests=len(catalog),
        catalog_slow_p99_ms=percentile([r.response_ms for r in catalog], 99),
        api_work_pieces=wasted.pieces,
        api_work_s=round(wasted.work_s, 3),
        wasted_work_s=round(wasted.wasted_s, 3),
        wasted_pct=round(wasted.pct, 2),
        useful_work_s=round(wasted.useful_s, 3),
        unmatched_work=wasted.unmatched,
        api_shed=sum(whole(v) for v in mapping(pool.get("shed")).values()),
        api_late=whole(pool.get("late")),
        budget_exhausted=budget_exhausted(result),
        peak_in_flight={hop: int(max(ys, default=0)) for hop, (_, ys) in in_flight.items()},
        in_flight=in_flight,
    )
