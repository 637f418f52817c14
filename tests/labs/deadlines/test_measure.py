"""deadlines' measurements (labs/deadlines/measure.py): wasted work matched by request id,
the slow window, and `derive`'s typed numbers whose JSON view is results.json's `extra`
(fast, no processes)."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.deadlines.hedging import HedgeNumbers
from labs.deadlines.measure import (
    CALLS_FILE,
    WORK_LOG,
    DeadlineNumbers,
    Work,
    derive,
    read_calls,
    read_work,
    slow_window,
    wasted_work,
)
from labs.deadlines.scenario import HEDGED, PER_HOP
from labs.engine.analysis.metrics import Request, summarize
from labs.engine.analysis.windows import Window
from labs.engine.model.spec import DeriveContext

ORIGIN = 1_000.0
SLOW, RECOVER = {"work_factor": 20}, {"work_factor": 0}


def _fault(t_s: float, settings: dict[str, int]) -> dict[str, object]:
    return {"t_s": t_s, "what": "fault", "service": "api", "replica": None,
            "settings": settings}  # fmt: skip


def test_wasted_work_is_the_part_after_the_client_stopped_waiting():
    work = (
        Work("a", 10.0, 10.5),  # client ended at 10.2: 0.3 s wasted
        Work("b", 10.0, 10.5),  # client ended at 11: none wasted
        Work("c", 11.0, 11.5),  # client ended before it started: all 0.5 s wasted
        Work("d", 11.0, 11.5),  # client never finished: unmatched, not wasted
        Work("e", 30.0, 30.5),  # outside the window
    )
    ended = {"a": 10.2, "b": 11.0, "c": 10.9}
    w = wasted_work(work, ended, Window(9.0, 20.0))
    assert (w.pieces, w.unmatched) == (4, 1)
    assert w.work_s == pytest.approx(2.0) and w.wasted_s == pytest.approx(0.8)
    assert w.pct == pytest.approx(40.0) and w.useful_s == pytest.approx(1.2)
    assert math.isnan(wasted_work((), ended, Window(0, 1)).pct)


def test_the_files_are_read_and_missing_ones_read_as_empty(tmp_path: Path):
    assert read_calls(tmp_path / CALLS_FILE) == {} and read_work(tmp_path / WORK_LOG.file) == ()
    (tmp_path / CALLS_FILE).write_text(
        "request_id,path,start_s,end_s,status\nx-1,/checkout,1.0,1.8,0\n"
    )
    (tmp_path / WORK_LOG.file).write_text(json.dumps({"entries": [["x-1", 1.5, 2.0], ["bad"]]}))
    assert read_calls(tmp_path / CALLS_FILE) == {"x-1": 1.8}
    assert read_work(tmp_path / WORK_LOG.file) == (Work("x-1", 1.5, 2.0),)


def test_slow_window_is_the_first_fault_window_or_empty():
    result = summarize(
        "v", [Request(ORIGIN, "/checkout", 200, 10), Request(ORIGIN + 16, "/x", 200, 1)]
    )
    assert slow_window(result) == Window(result.duration_s, result.duration_s)
    result = replace(result, events=[_fault(5.0, SLOW), _fault(13.0, RECOVER)])
    assert (slow_window(result).start_s, slow_window(result).end_s) == (5.0, 13.0)


def test_derive_returns_typed_numbers_whose_view_is_extra(tmp_path: Path):
    requests = [
        Request(ORIGIN + 1, "/catalog", 200, 30),
        Request(ORIGIN + 6, "/catalog", 200, 2000),
        Request(ORIGIN + 6, "/checkout", 0, 800),
        Request(ORIGIN + 7, "/checkout", 200, 600),
        Request(ORIGIN + 16, "/catalog", 200, 30),
    ]
    (tmp_path / CALLS_FILE).write_text(
        "request_id,path,start_s,end_s,status\n"
        f"k-1,/checkout,{ORIGIN + 6},{ORIGIN + 6.8},0\n"
        f"k-2,/checkout,{ORIGIN + 7},{ORIGIN + 7.6},200\n"
    )
    entries = [["k-1", ORIGIN + 6.6, ORIGIN + 7.1], ["k-2", ORIGIN + 7.1, ORIGIN + 7.6]]
    (tmp_path / WORK_LOG.file).write_text(json.dumps({"entries": entries}))
    result = summarize("per-hop", requests)
    result = replace(
        result,
        events=[_fault(5.0, SLOW), _fault(13.0, RECOVER)],
        services={"api": [{"workpool": {"shed": {"deadline": 3, "queue_full": 0}, "late": 2}}]},
        samples=[{"t_s": 6.0, "service": "edge", "replica": 0, "stats": {"in_flight": 7}}],
    )
    n = derive(DeriveContext(PER_HOP, result, requests, tmp_path))
    assert isinstance(n, DeadlineNumbers)
    assert (n.checkout_slow_requests, n.checkout_slow_ok, n.checkout_slow_gave_up) == (2, 1, 1)
    assert n.catalog_slow_requests == 1 and n.catalog_slow_p99_ms == 2000
    assert n.catalog_before_p99_ms == 30
    assert n.api_work_pieces == 2 and n.api_work_s == pytest.approx(1.0)
    assert n.wasted_work_s == pytest.approx(0.3) and n.wasted_pct == pytest.approx(30.0)
    assert (n.api_shed, n.api_late, n.budget_exhausted) == (3, 2, 0)
    assert n.peak_in_flight == {"edge": 7} and n.in_flight == {"edge": ((6.0,), (7.0,))}
    assert list(asdict(n)) == [f for f in DeadlineNumbers.__dataclass_fields__]
    with pytest.raises(FrozenInstanceError):
        n.wasted_pct = 0.0  # type: ignore[misc]


def test_hedged_numbers_count_the_apis_own_arrivals_per_phase(tmp_path: Path):
    # Client requests: 20 in the tail phase (2 of them slow), 10 in the all-slow phase.
    requests = [Request(ORIGIN + 1.0 + i * 0.1, "/work", 200, 20.0) for i in range(18)]
    requests += [Request(ORIGIN + 3.0 + i * 0.1, "/work", 200, 500.0) for i in range(2)]
    requests += [Request(ORIGIN + 7.0 + i * 0.1, "/work", 200, 500.0) for i in range(10)]
    requests.insert(0, Request(ORIGIN, "/work", 200, 20.0))  # before SETTLE_S: left out
    result = summarize("hedged", requests)
    assert result.origin_s == ORIGIN and result.duration_s >= 8.0
    # The api's 100 ms buckets from ORIGIN: two replicas, each request counted once by
    # one of them, plus 2 hedges in the tail phase and 1 in the all-slow phase.
    counts = [0] * 100
    for r in requests:
        counts[round((r.start_s - ORIGIN) * 10)] += 1
    counts[32] += 2
    counts[75] += 1
    first, second = counts[:50] + [0] * 50, [0] * 50 + counts[50:]
    arrivals = [{"bucket_s": 0.1, "start_epoch_s": ORIGIN, "counts": c} for c in (first, second)]
    gateway = {"downstreams": {"api": {"hedge": {"hedges": 3, "denied": 9, "hedge_won": 1}}}}
    result = replace(
        result,
        duration_s=10.0,
        events=[_fault(5.0, {"latency_ms": 500})],
        services={"api": [{"arrivals": a} for a in arrivals], "gateway": [gateway]},
    )
    n = derive(DeriveContext(HEDGED, result, requests, tmp_path))
    assert isinstance(n, HedgeNumbers)
    assert (n.tail.start_s, n.tail.end_s) == (1.0, 5.0)
    assert (n.tail.requests, n.tail.api_requests, n.tail.over_delay) == (20, 22, 2)
    assert n.tail_extra_pct == 10.0
    # The all-slow phase starts once the saved tokens are spent, and ends early.
    assert (n.all_slow.start_s, n.all_slow.end_s) == (6.0, 8.5)
    assert (n.all_slow.requests, n.all_slow.api_requests) == (10, 11)
    assert n.all_slow_extra_pct == 10.0
    assert (n.hedges, n.hedges_denied, n.hedge_won) == (3, 9, 1)
