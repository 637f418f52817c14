"""streaming's measurements (labs/streaming/measure.py) on synthetic runs."""

from __future__ import annotations

import csv
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import summarize
from labs.engine.model.spec import DeriveContext
from labs.streaming.measure import (
    EVENTS_FILE,
    STREAMS_FILE,
    Connection,
    derive,
    gaps,
    owed_until,
)
from labs.streaming.scenario import IDLE_TIMEOUT

STREAM_HEADER = ["user", "connection", "transport", "start_s", "end_s", "status", "outcome",
                 "last_event_id", "events", "heartbeats", "since_s"]  # fmt: skip
T0 = 1_000.0
"""The subscriptions' start (`?since=`); the feed: event k at T0 + 1 + (k - 1) x 7 s."""


def write(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> None:
    with (folder / name).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def context(tmp_path: Path) -> DeriveContext:
    """Two subscribers on the quiet feed. `a` resumes: cut at 6 s, back at 9.2 s with
    Last-Event-ID 1, gets event 2 replayed, still open at the end. `b` does not: cut at
    6 s, back at 9.3 s without it, so event 2 (due at 8 s) never comes; gets event 3."""
    write(tmp_path, STREAMS_FILE, STREAM_HEADER, [
        ["a", 1, "sse", T0, T0 + 6.0, 200, "cut", "", 1, 0, T0],
        ["a", 2, "sse", T0 + 9.2, T0 + 20.0, 200, "open", "1", 2, 0, T0],
        ["b", 1, "sse", T0, T0 + 6.0, 200, "cut", "", 1, 0, T0],
        ["b", 2, "sse", T0 + 9.3, T0 + 20.0, 200, "open", "", 1, 0, T0],
    ])  # fmt: skip
    write(tmp_path, EVENTS_FILE, ["user", "connection", "id", "sent_s", "received_s"], [
        ["a", 1, 1, T0 + 1.0, T0 + 1.001],
        ["a", 2, 2, T0 + 9.2, T0 + 9.203],
        ["a", 2, 3, T0 + 15.0, T0 + 15.002],
        ["b", 1, 1, T0 + 1.0, T0 + 1.004],
        ["b", 2, 3, T0 + 15.0, T0 + 15.010],
    ])  # fmt: skip
    services = {
        "stream": [{"interval_s": 7.0, "first_event_s": 1.0,
                    "counts": {"events_sent": 5, "events_replayed": 1, "resumed_streams": 1}}]
    }  # fmt: skip
    result = replace(summarize("idle-timeout", []), origin_s=T0, services=services)
    return DeriveContext(IDLE_TIMEOUT, result, [], tmp_path)


def test_derive_counts_cuts_resumes_losses_and_delays(tmp_path: Path):
    n = derive(context(tmp_path))
    assert (n.subscribers, n.connections, n.handshakes_ok, n.handshakes_failed) == (2, 4, 4, 0)
    assert (n.events, n.cuts, n.fewest_cuts, n.resumed) == (5, 2, 1, 1)
    assert (n.lost, n.duplicates) == (1, 0)  # b's event 2
    assert (n.delay_p50_ms, n.delay_p99_ms, n.delay_max_ms) == (3.0, 10.0, 10.0)
    assert n.peak_reconnects_per_s == 2 and n.reconnects == ((0.0, 1.0, 2.0, 3.0, 4.0, 5.0,
                                                             6.0, 7.0, 8.0, 9.0),
                                                            (0.0,) * 9 + (2.0,))  # fmt: skip
    assert (n.server_events_sent, n.server_replayed, n.server_resumed) == (5, 1, 1)
    assert not n.steady(1, 100.0)
    field = "lost"
    with pytest.raises(FrozenInstanceError):
        setattr(n, field, 0)


def test_a_run_with_nothing_recorded_reads_as_zero(tmp_path: Path):
    n = derive(DeriveContext(IDLE_TIMEOUT, summarize("heartbeat", []), [], tmp_path))
    assert (n.subscribers, n.events, n.cuts, n.lost, n.delay_p99_ms) == (0, 0, 0, 0, 0.0)
    assert not n.steady(1, 100.0)


def test_gaps_count_what_never_came_up_to_what_was_owed():
    assert gaps([3, 4, 6]) == (1, 0)
    assert gaps([5], owed_until=7) == (2, 0)
    assert gaps([5, 9], owed_until=7) == (3, 0)
    assert gaps([2, 2, 3]) == (0, 1)
    assert gaps([], owed_until=7) == (0, 0)  # never got a place in the feed


def conn(start_s: float, end_s: float, since_s: float = T0) -> Connection:
    return Connection("a", 1, "sse", start_s, end_s, 200, "cut", "", since_s)


def test_owed_until_is_the_last_event_due_before_the_last_settled_connection():
    # events at T0 + 1, + 8, + 15: a connection from T0 + 9.2 was owed 1 and 2
    assert owed_until([conn(T0, T0 + 6), conn(T0 + 9.2, T0 + 14)], 7.0, 1.0) == 2
    # a connection the run stopped within SETTLE_S does not count
    assert owed_until([conn(T0, T0 + 6), conn(T0 + 16, T0 + 16.5)], 7.0, 1.0) == 0
    # the global feed: event k at k x interval
    assert owed_until([conn(70.5, 80.0, since_s=0)], 7.0, 1.0) == 10
    assert owed_until([conn(T0, T0 + 6)], float("nan"), 1.0) == 0
