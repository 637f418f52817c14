"""overload's measurements (labs/overload/measure.py) on a synthetic run: phases around
the trigger, goodput by the time the good answer came, the api's throughput from its
per-100 ms completions, the offered rate and send lag, the verdicts (fast, no processes)."""

from __future__ import annotations

import csv
import math
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext
from labs.overload.lab import hysteresis
from labs.overload.measure import (
    LOGICAL_FILE,
    OverloadNumbers,
    derive,
    per_second,
    read_logical,
)
from labs.overload.scenario import BROKEN

ORIGIN = 1_000.0
RATE = 10  # new requests per second in the synthetic run
TRIGGER = (5.0, 8.0)
ARRIVALS_S = 20
CAPACITY = 40.0


def _write_logical(path: Path, recovers: bool) -> list[Request]:
    """RATE requests a second for ARRIVALS_S s, sent 2 ms late; before the trigger each
    answers in 100 ms; from the trigger on every attempt times out (4 of them), and
    with `recovers` the requests from 1 s after the trigger answer in 100 ms again."""
    rows, attempts = [], []
    for i in range(ARRIVALS_S * RATE):
        t = i / RATE
        good = t < TRIGGER[0] or (recovers and t >= TRIGGER[1] + 1)
        sent = t + 0.002
        if good:
            rows.append((t, sent, sent + 0.1, 1, 200, "ok"))
            attempts.append(Request(ORIGIN + sent, "/work", 200, 100.0))
        else:
            rows.append((t, sent, sent + 4.0, 4, 0, "failed"))
            attempts += [Request(ORIGIN + sent + k, "/work" if k == 0 else
                                 "/work (client retry)", 0, 1000.0) for k in range(4)]  # fmt: skip
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["intended_s", "sent_s", "end_s", "attempts", "status", "outcome"])
        writer.writerow([f"{ORIGIN + 19.95:.6f}", "0.000000", "0.000000", 0, 0, "pending"])
        for t, sent, end, n, status, outcome in rows:
            writer.writerow([f"{ORIGIN + t:.6f}", f"{ORIGIN + sent:.6f}", f"{ORIGIN + end:.6f}",
                             n, status, outcome])  # fmt: skip
    return attempts


def _run(tmp_path: Path, recovers: bool) -> DeriveContext:
    attempts = _write_logical(tmp_path / LOGICAL_FILE, recovers)
    events = [
        {"t_s": TRIGGER[0], "what": "fault", "service": "api", "replica": None,
         "settings": {"work_factor": 3}},
        {"t_s": TRIGGER[1], "what": "fault", "service": "api", "replica": None,
         "settings": {"work_factor": 0}},
    ]  # fmt: skip
    completions = [4] * (10 * 30)  # 40 per second for 30 s: the api always busy
    services = {"api": [{"workpool": {
        "capacity_per_s": CAPACITY, "completed": sum(completions), "late": 500, "queue_max": 900,
        "shed": {"queue_full": 0, "queue_time": 0, "deadline": 0},
        "completions": {"bucket_s": 0.1, "start_epoch_s": ORIGIN, "counts": completions},
    }}]}  # fmt: skip
    result = replace(
        summarize("broken", attempts), origin_s=ORIGIN, events=events, services=services
    )
    return DeriveContext(BROKEN, result, attempts, tmp_path)


def test_read_logical_is_in_run_time_and_a_request_never_sent_has_no_send_time(tmp_path):
    _write_logical(tmp_path / LOGICAL_FILE, recovers=False)
    first, *rest = read_logical(tmp_path / LOGICAL_FILE, ORIGIN)
    assert (
        first.outcome == "pending"
        and math.isnan(first.sent_s)
        and first.intended_s == pytest.approx(19.95)
    )
    assert rest[0].intended_s == 0 and rest[0].sent_s == pytest.approx(0.002)
    assert read_logical(tmp_path / "absent.csv", ORIGIN) == []


def test_a_run_that_stays_down(tmp_path):
    n = derive(_run(tmp_path, recovers=False))
    assert isinstance(n, OverloadNumbers)
    assert (n.trigger_start_s, n.trigger_end_s) == TRIGGER
    assert n.before.start_s == 1.0 and n.after.start_s == TRIGGER[1] + 5
    assert n.arrivals_end_s == 19.95
    assert n.goodput_before_per_s == pytest.approx(RATE, rel=0.03)
    assert n.goodput_after_per_s == 0 and n.goodput_ratio == 0
    assert n.throughput_after_per_s == pytest.approx(CAPACITY, rel=0.02)
    assert n.busy_ratio == pytest.approx(1.0, rel=0.02)
    assert n.after.attempts_per_s == pytest.approx(4 * RATE, rel=0.05)
    assert n.after.latency_p50_ms == pytest.approx(4002, abs=1)
    assert n.before.latency_p50_ms == pytest.approx(102, abs=1)
    assert n.target_rate_per_s == 50  # the variant's LAB_RATE, not this synthetic one
    assert n.outcomes == {"failed": 150, "ok": 50, "pending": 1}
    assert n.retries == 3 * 150 and n.attempts == 50 + 4 * 150
    assert n.send_lag_p99_ms == pytest.approx(2.0, abs=0.01)
    assert (n.api_late, n.api_queue_max) == (500, 900)
    assert n.stays_down(0.2, 0.8) and not n.recovers(0.9, 10)
    with pytest.raises(FrozenInstanceError):
        n.__setattr__("goodput_ratio", 1.0)


def test_a_run_that_recovers(tmp_path):
    n = derive(_run(tmp_path, recovers=True))
    assert n.goodput_ratio == pytest.approx(1.0, abs=0.05)
    assert n.recovers(0.9, min_before=30) and not n.recovers(0.9, min_before=100)
    assert not n.stays_down(0.2, 0.8)
    xs, goodput = n.series["goodput"]
    assert xs[0] == 0 and goodput[2] == RATE and goodput[6] == 0
    assert set(n.series) == {"new requests", "attempts sent", "api throughput", "goodput"}
    assert n.series["api throughput"][1][3] == CAPACITY


def test_attempts_per_accept_from_the_trigger_to_5s_after_it(tmp_path):
    down = derive(_run(tmp_path, recovers=False))
    assert down.overload_accepts == 0 and math.isnan(down.attempts_per_accept)
    assert not down.throttled(1000)
    up = derive(_run(tmp_path, recovers=True))
    # [5, 13): 40 requests fail (4 attempts each, all sent before 13 s), 40 answer at once.
    assert (up.overload_attempts, up.overload_accepts, up.attempts_per_accept) == (200, 40, 5.0)
    assert up.throttled(5.0) and not up.throttled(4.9)


def test_the_gateway_s_limit_over_time_and_during_the_trigger(tmp_path):
    context = _run(tmp_path, recovers=True)
    none = derive(context).limit  # no gateway
    assert none.over_time == ((), ()) and none.highest == 0 and math.isnan(none.during_mean)
    limits = [20] * 50 + [10] * 30 + [20] * 120  # 100 ms each from 0 s: 10 from 5 s to 8 s
    gateway = {"adaptive_limit": {
        "limit": 20, "lowest": 10, "highest": 20, "admitted": 900, "rejected": 40,
        "config": {"initial": 20},
        "history": {"bucket_s": 0.1, "start_epoch_s": ORIGIN - 1, "limits": [20] * 10 + limits},
    }}  # fmt: skip
    services = {**context.result.services, "gateway": [gateway]}
    n = derive(replace(context, result=replace(context.result, services=services)))
    xs, values = n.limit.over_time
    assert xs[0] == 0 and values[49:52] == (20, 10, 10) and n.limit.during_mean == 10
    assert (n.limit.initial, n.limit.lowest, n.limit.rejected) == (20, 10, 40)


def test_the_offered_rate_is_judged_against_the_clients_own_schedule(tmp_path):
    context = _run(tmp_path, recovers=False)
    n = derive(context)
    # 10/s scheduled and sent, 2 ms late: on schedule, though the target says 50/s
    assert n.target_rate_per_s == 50 and n.scheduled_rate_per_s == pytest.approx(RATE, rel=0.02)
    assert n.offered_rate_per_s == pytest.approx(RATE, rel=0.02)
    assert n.offered_error <= 0.01 and n.open_loop(0.1)
    # the clients fall behind: every other request from the trigger on never leaves
    path = tmp_path / LOGICAL_FILE
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    for index, row in enumerate(rows[2:]):
        if float(row[0]) - ORIGIN >= TRIGGER[0] and index % 2:
            row[1], row[5] = "0.000000", "dropped"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    behind = derive(context)
    assert behind.scheduled_rate_per_s == n.scheduled_rate_per_s
    assert behind.offered_error == pytest.approx(0.5, abs=0.02)
    assert not behind.open_loop(0.1)


def test_no_trigger_means_nothing_can_be_judged(tmp_path):
    context = _run(tmp_path, recovers=True)
    n = derive(replace(context, result=replace(context.result, events=[])))
    assert math.isnan(n.goodput_ratio)
    assert not n.recovers(0.9, 0) and not n.stays_down(0.2, 0.8)


def test_per_second_counts_whole_seconds_from_zero():
    assert per_second([0.1, 0.9, 1.0, 2.5, -0.1, 3.0], 3.0) == ((0.0, 1.0, 2.0), (2.0, 1.0, 1.0))


def test_the_hysteresis_table_has_a_row_per_variant_that_ran_in_the_lab_s_order(tmp_path):
    results = {}
    for name, recovers in (("bounded-queue", True), ("broken", False)):
        (tmp_path / name).mkdir()
        context = _run(tmp_path / name, recovers)
        results[name] = replace(context.result, derived=derive(context))
    assert hysteresis(results) == [
        ("broken", "3.0", "10 (50)", "none", "10 -> 0", "0 %", "NO"),
        ("bounded-queue", "3.0", "10 (50)", "bounded-queue", "10 -> 10.07", "100 %", "yes"),
    ]
