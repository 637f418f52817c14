"""The graceful-shutdown lab's own logic: the rollout it schedules, what it reads from
the runs (drain lines, restarts, failures) and how its checks word the numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from labs.engine.metrics import Request, VariantResult
from labs.engine.series import fault_windows
from labs.graceful_shutdown import lab
from services.common.shutdown import DrainReport


def test_rollout_restarts_every_replica_in_turn_and_starts_it_before_the_next_stop():
    steps = lab.restarts("stop")
    stops = [s for s in steps if s.action == "stop"]
    starts = [s for s in steps if s.action == "start"]
    assert [s.replica for s in stops] == [0, 1, 2, 0, 1, 2]
    assert [s.replica for s in starts] == [s.replica for s in stops]
    for stop, start, following in zip(stops, starts, stops[1:] + [None], strict=True):
        assert stop.at_s < start.at_s
        if following is not None:
            assert start.at_s < following.at_s, "one replica down at a time"
    assert starts[-1].at_s + 3 < lab.DURATION_S, "the last restart ends under load"


def test_drain_lines_the_service_prints_are_read_back(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    report = DrainReport(duration_s=0.314, connections_at_start=16, closing_responses=12,
                         connections_left=1)  # fmt: skip
    (logs / "api-1.log").write_text(
        f"api api-1 listening on http://127.0.0.1:1\n{report.line('api-1')}\n"
    )
    (logs / "api-2.log").write_text("api api-2 listening on http://127.0.0.1:2\n")
    assert lab.read_drains(logs) == [lab.Drain(0.31, 16, 12, 1)]


def test_restarts_count_only_finished_starts():
    events = [
        {"action": "stop", "processes": ["api-1"]},
        {"action": "start", "processes": ["api-1"]},
        {"action": "kill", "processes": ["api-2"]},
        {"action": "start", "processes": ["api-2"]},
        {"action": "start", "processes": ["api-1"]},
    ]
    assert lab.restarted(events) == Counter({"api-1": 2, "api-2": 1})


def test_failures_are_described_like_a_grader():
    requests = [Request(0.0, "/orders", 502, 1.0)] * 19 + [Request(0.0, "/work", 0, 1.0)] * 4
    requests += [Request(0.0, "/work", 200, 1.0)] * 1817
    failed = lab.failures(requests)
    result = VariantResult("hard-kill", 30, len(requests), 23, {}, 0, 0, 0, 0, 0, 0)
    result.extra = {"failed": sum(failed.values()), "failed_by_status": {"502": 19, "0": 4}}
    assert lab.describe_failures(result) == "23 of 1,840 requests failed (1.2 %: 19 x 502, 4 x 0)"


def test_a_restart_is_shaded_from_its_stop_to_its_start_only():
    result = VariantResult("graceful", 30, 0, 0, {}, 0, 0, 0, 0, 0, 0)
    result.events = [
        {"t_s": 5.0, "what": "fault", "action": "stop", "service": "api", "replica": 0},
        {"t_s": 6.2, "what": "fault", "action": "start", "service": "api", "replica": 0},
        {"t_s": 9.0, "what": "fault", "action": "stop", "service": "api", "replica": 1},
        {"t_s": 10.1, "what": "fault", "action": "start", "service": "api", "replica": 1},
        {"t_s": 17.0, "what": "fault", "action": "stop", "service": "api", "replica": 0},
    ]
    assert fault_windows(result) == [(5.0, 6.2), (9.0, 10.1), (17.0, 30.0)]
