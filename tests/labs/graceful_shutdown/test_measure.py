"""graceful-shutdown's measurements (labs/graceful_shutdown/measure.py) on synthetic runs:
the drain lines, the restarts, the failures and how they are worded."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, VariantResult
from labs.engine.analysis.series import fault_windows
from labs.engine.model.spec import DeriveContext
from labs.graceful_shutdown.measure import (
    POST_NAME,
    Drain,
    GracefulNumbers,
    derive,
    describe_failures,
    failures,
    read_drains,
)
from labs.graceful_shutdown.scenario import GRACEFUL
from services.common.shutdown import DrainReport

INTENTS = """\
intent_id,key,start_s,end_s,attempts,status,outcome,order_id
a,,1.0,1.1,1,201,created,o1
b,,1.2,1.5,1,502,rejected,
c,,1.3,1.6,1,201,created,o3
d,,1.4,0,1,0,pending,
"""
ORDERS = [{"id": "o1", "intent_id": "a"}, {"id": "o3", "intent_id": "c"}]


def fault(t_s: float, action: str, replica: int) -> dict[str, object]:
    return {"t_s": t_s, "what": "fault", "action": action, "service": "api", "replica": replica,
            "processes": [f"api-{replica + 1}"]}  # fmt: skip


def run_folder(tmp_path: Path) -> Path:
    (tmp_path / "intents.csv").write_text(INTENTS)
    (tmp_path / "orders.json").write_text(json.dumps({"orders": ORDERS, "more": False}))
    (tmp_path / "logs").mkdir()
    for name, report in (
        ("api-1", DrainReport(duration_s=0.314, connections_at_start=16, accepted_at_close=1,
                              closing_responses=12, connections_left=1)),
        ("api-2", DrainReport(duration_s=2.5, connections_at_start=9, accepted_at_close=0,
                              closing_responses=7, connections_left=0)),
    ):  # fmt: skip
        (tmp_path / "logs" / f"{name}.log").write_text(
            f"api {name} listening on http://127.0.0.1:1\n{report.line(name)}\n"
        )
    return tmp_path


def context(tmp_path: Path) -> DeriveContext:
    requests = [
        Request(1.0, POST_NAME, 201, 300.0),
        Request(1.2, POST_NAME, 502, 300.0),
        Request(1.3, POST_NAME, 201, 300.0),
        Request(1.4, POST_NAME, 0, 5000.0),
        Request(1.5, "/work", 200, 300.0),
        Request(1.6, "/work", 502, 300.0),
    ]
    result = VariantResult("graceful", 30, len(requests), 3, {}, 0, 0, 0, 0, 0, 0)
    result = replace(result, nginx_errors={"upstream_prematurely_closed": 2, "connection_reset": 1,
                           "connection_refused": 9})  # fmt: skip
    result = replace(
        result,
        events=[
            fault(5.0, "stop", 0),
            fault(6.2, "start", 0),
            fault(9.0, "kill", 1),
            fault(10.1, "start", 1),
            fault(13.0, "stop", 0),
            fault(14.3, "start", 0),
        ],
    )
    return DeriveContext(GRACEFUL, result, requests, run_folder(tmp_path))


def test_numbers_are_todays_extra_field_by_field(tmp_path: Path):
    numbers = derive(context(tmp_path))
    # results.json's `extra`, as the lab wrote it before its numbers were typed: the same
    # keys in the same order with the same values
    assert list(asdict(numbers).items()) == [
        ("failed", 3),
        ("failed_by_status", {"0": 1, "502": 2}),
        ("posts", 4),
        ("failed_posts", 2),
        ("failed_gets", 1),
        ("finished_intents", 3),
        ("orders_stored", 2),
        ("lost_posts", 1),
        ("duplicates", 0),
        ("mismatches", 0),
        ("upstream_resets", 3),
        ("restarts", 3),
        ("replicas_restarted", 2),
        ("last_start_s", 14.3),
        ("drains", 2),
        ("drain_max_s", 2.5),
        ("drain_backlog_accepted", 1),
        ("drain_closing_responses", 19),
        ("drain_connections_left", 1),
    ]
    assert numbers.wrong == 3 + 1 + 0 + 3  # failed, lost, duplicated, resets
    field = "failed"
    with pytest.raises(FrozenInstanceError):
        setattr(numbers, field, 0)


def test_a_run_with_nothing_collected_reads_as_zero(tmp_path: Path):
    result = VariantResult("graceful", 0, 0, 0, {}, 0, 0, 0, 0, 0, 0)
    numbers = derive(DeriveContext(GRACEFUL, result, [], tmp_path))
    assert asdict(numbers) == {field: 0 for field in asdict(numbers)} | {"failed_by_status": {}}


def test_drain_lines_the_service_prints_are_read_back(tmp_path: Path):
    logs = run_folder(tmp_path) / "logs"
    (logs / "api-3.log").write_text("api api-3 listening on http://127.0.0.1:3\n")
    assert read_drains(logs) == [Drain(0.31, 16, 1, 12, 1), Drain(2.5, 9, 0, 7, 0)]


def test_restarts_count_only_starts_each_replica_once_among_the_restarted(tmp_path: Path):
    """A stop or a kill is not a restart: the engine records a "start" once the replica
    answers /readyz again."""
    ctx = context(tmp_path)
    ctx = replace(
        ctx,
        result=replace(
            ctx.result,
            events=[fault(5.0, "stop", 0), fault(9.0, "kill", 1), fault(6.2, "start", 0)],
        ),
    )
    ctx.result.events.append({"t_s": 7.0, "what": "fault", "action": "settings",
                              "settings": {"latency_ms": 5}})  # fmt: skip
    numbers = derive(ctx)
    assert (numbers.restarts, numbers.replicas_restarted, numbers.last_start_s) == (1, 1, 6.2)


def test_failures_are_described_like_a_grader():
    requests = [Request(0.0, "/orders", 502, 1.0)] * 19 + [Request(0.0, "/work", 0, 1.0)] * 4
    requests += [Request(0.0, "/work", 200, 1.0)] * 1817
    failed = failures(requests)
    assert failed == {502: 19, 0: 4}
    result = VariantResult("hard-kill", 30, len(requests), 23, {}, 0, 0, 0, 0, 0, 0)
    result = replace(result, derived=GracefulNumbers(
        failed=23, failed_by_status={"502": 19, "0": 4}, posts=19, failed_posts=19,
        failed_gets=4, finished_intents=19, orders_stored=0, lost_posts=19, duplicates=0,
        mismatches=0, upstream_resets=0, restarts=6, replicas_restarted=3, last_start_s=25.0,
        drains=0, drain_max_s=0.0, drain_backlog_accepted=0, drain_closing_responses=0,
        drain_connections_left=0,
    ))  # fmt: skip
    assert describe_failures(result) == "23 of 1,840 requests failed (1.2 %: 19 x 502, 4 x 0)"


def test_a_restart_is_shaded_from_its_stop_to_its_start_only():
    result = VariantResult("graceful", 30, 0, 0, {}, 0, 0, 0, 0, 0, 0)
    result = replace(
        result,
        events=[
            {"t_s": 5.0, "what": "fault", "action": "stop", "service": "api", "replica": 0},
            {"t_s": 6.2, "what": "fault", "action": "start", "service": "api", "replica": 0},
            {"t_s": 9.0, "what": "fault", "action": "stop", "service": "api", "replica": 1},
            {"t_s": 10.1, "what": "fault", "action": "start", "service": "api", "replica": 1},
            {"t_s": 17.0, "what": "fault", "action": "stop", "service": "api", "replica": 0},
        ],
    )
    assert fault_windows(result) == [(5.0, 6.2), (9.0, 10.1), (17.0, 30.0)]
