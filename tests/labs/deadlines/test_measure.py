"""deadlines' measurements (labs/deadlines/measure.py): wasted work matched by request id,
the slow window, and `derive`'s typed numbers whose JSON view is results.json's `extra`
(fast, no processes)."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

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
from labs.deadlines.scenario import PER_HOP
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
