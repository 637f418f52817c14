"""The graceful-shutdown lab's own logic: the rollout it schedules, what it reads from
the runs (drain lines, restarts, failures) and how its checks word the numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from labs.engine.analysis.metrics import Request, VariantResult
from labs.engine.analysis.series import fault_windows
from labs.engine.model.verdicts import judge
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
    rollout_s = starts[-1].at_s + lab.ROLLOUT_TAIL_S
    assert rollout_s <= 30, "locally the run ends as before, ~30 s"
    assert 3 * rollout_s <= lab.MAX_DURATION_S, "room for a topology 3 x slower to restart"


def test_the_rollout_sets_the_length_of_the_load():
    """Locust's --run-time is only a cap: the load ends ROLLOUT_TAIL_S after every replica
    has answered after its last restart (1 + rounds processes each)."""
    for rounds in (0, 1, 2):
        env = lab.load(rounds).env
        assert env["LAB_ROLLOUT_BOOTS"] == str(lab.REPLICAS * (rounds + 1))
        assert float(env["LAB_ROLLOUT_TAIL_S"]) == lab.ROLLOUT_TAIL_S
    assert lab.load(lab.ROUNDS) == lab.LOAD and lab.LOAD.duration_s == lab.MAX_DURATION_S
    assert all(v.load == lab.LOAD for v in lab.VARIANTS)
    edited = lab.apply_settings(
        lab.NAIVE,
        {"api": {"shutdown_mode": "drain", "shutdown_timeout_s": 4.0},
         "nginx": {"upstream": {"keepalive": 32, "keepalive_timeout": "2s"},
                   "proxy": {"next_upstream": "error timeout"}},
         "rollout": {"rounds": 1}},
    )  # fmt: skip
    assert edited.load == lab.load(1) and lab.rounds_of(edited) == 1


def test_users_send_their_next_request_at_once():
    """No pause: requests keep arriving while a stopping replica's last responses come
    back, which is what makes aiohttp-default's race show in every run."""
    env = lab.LOAD.env
    assert (float(env["LAB_THINK_MIN_S"]), float(env["LAB_THINK_MAX_S"])) == lab.THINK_S == (0, 0)


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


def numbers(name: str, **extra: float) -> VariantResult:
    result = VariantResult(name, 30, 7000, 0, {}, 0, 0, 0, 0, 0, 0)
    base = {"failed": 0, "failed_posts": 0, "lost_posts": 0, "duplicates": 0,
            "upstream_resets": 0, "restarts": 6, "replicas_restarted": 3}  # fmt: skip
    result.extra = {**base, **extra}
    return result


MEASURED = {  # the shape of a measured run (guide.md's ranges)
    name: numbers(name, failed=n, failed_posts=n, lost_posts=n, upstream_resets=resets)
    for name, n, resets in (
        ("hard-kill", 77, 148),
        ("sigterm-naive", 65, 147),
        ("aiohttp-default", 5, 12),
    )
}
MEASURED["graceful"] = numbers("graceful")


def test_every_variant_is_judged_and_every_check_fails_on_its_twins_numbers():
    assert {v.name: v.twin for v in lab.VARIANTS} == {
        "hard-kill": "graceful",
        "sigterm-naive": "graceful",
        "aiohttp-default": "graceful",
        "graceful": "aiohttp-default",  # the drain is exactly what aiohttp's shutdown lacks
    }
    assert not any(v.explore for v in lab.VARIANTS)
    checks = judge(lab.LAB, MEASURED)
    assert [(c.name, c.passed, c.fails_without_fix) for c in checks] == [
        ("hard_kill_shows_client_errors", True, True),
        ("sigterm_naive_shows_client_errors", True, True),
        ("aiohttp_default_loses_posts_on_pooled_connections", True, True),
        ("graceful_no_client_errors_no_lost_posts", True, True),
    ]
    assert checks[3].proof_detail.startswith("[graceful <- aiohttp-default] graceful: 5 of")


def test_the_race_check_needs_resets_a_lost_order_and_the_whole_rollout():
    (check,) = [c for c in lab.CHECKS if c.variants == ("aiohttp-default",)]
    bare = dict(MEASURED)
    for extra, passed in (
        ({"upstream_resets": lab.MIN_RACES, "lost_posts": 1}, True),
        ({"upstream_resets": lab.MIN_RACES - 1, "lost_posts": 1}, False),
        ({"upstream_resets": 30, "lost_posts": 0}, False),  # GETs only: nginx hid them all
        ({"upstream_resets": 30, "lost_posts": 3, "restarts": 5}, False),
    ):
        bare["aiohttp-default"] = numbers("aiohttp-default", **extra)
        ok, detail = check.evaluate(bare)
        assert ok is passed, (extra, detail)
    assert "expected >= 5 resets and >= 1 lost order over 6 restarts" in detail
