"""Where a run's wall time goes (labs/engine/runtime/timings.py)."""

from __future__ import annotations

import json

import pytest

from labs.engine.analysis.metrics import Request
from labs.engine.runtime.timings import RunTimings, Stopwatch, load_ran, split_load


def test_the_locust_wall_time_splits_at_the_first_request_and_the_last_answer():
    watch = Stopwatch()
    requests = [Request(101.5, "/w", 200, 500.0), Request(110.0, "/w", 200, 1000.0)]
    split_load(watch, 100.0, 113.0, requests)
    assert watch.seconds == pytest.approx({"spinup": 1.5, "load": 9.5, "exit": 2.0})
    assert watch.total_s == pytest.approx(13.0)
    empty = Stopwatch()
    split_load(empty, 100.0, 104.0, [])
    assert empty.seconds == {"load": 4.0}


def test_phases_add_up_and_the_line_says_the_overhead(tmp_path):
    watch = Stopwatch()
    with watch.phase("start"):
        pass
    watch.add("start", 1.0)
    assert watch.seconds["start"] >= 1.0
    timings = RunTimings(
        wall_s=46.0,
        setup_s=0.5,
        report_s=1.5,
        load_s=40,
        variants={
            "a": {"start": 1.0, "load": 20.0, "stop": 1.0},
            "b": {"start": 1.5, "load": 20.5, "stop": 0.5},
        },
    )
    assert timings.critical(parallel=False)["start"] == 2.5
    assert timings.critical(parallel=True) == {"start": 1.5, "load": 20.5, "stop": 0.5}
    line = timings.line("lab", parallel=False)
    assert line.startswith("lab: time 46.0 s for 40.0 s of load (1.15x): start 2.5, spinup 0.0")
    assert line.endswith("setup 0.5, report 1.5")
    timings.write(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["variants"]["b"]["stop"] == 0.5


def test_seconds_of_load_count_what_ran_up_to_the_plan():
    ran = {
        "open-loop": {"spinup": 0.5, "load": 20.5, "exit": 0.3},  # its schedule ends at 20 s
        "capped": {"spinup": 0.5, "load": 29.8, "exit": 1.2},  # Locust stopped it at 30 s
        "streams": {"spinup": 0.5, "load": 0.1, "exit": 30.4},  # recorded at their headers
    }
    planned = {"open-loop": 30, "capped": 30, "streams": 30}
    assert load_ran(planned, ran, parallel=False) == 20.8 + 30 + 30
    assert load_ran(planned, ran, parallel=True) == 30
    assert load_ran({}, {}, parallel=True) == 0.0
