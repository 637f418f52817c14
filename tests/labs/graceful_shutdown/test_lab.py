"""The graceful-shutdown lab (labs/graceful_shutdown/lab.py): the rollout it schedules and
its checks judged on synthetic numbers (fast), and the lab end to end: real nginx, 3 api
replicas restarted one after another under load, Redis, Locust (pytest -m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from labs.graceful_shutdown.lab import CHECKS, LAB
from labs.graceful_shutdown.measure import GracefulNumbers
from labs.graceful_shutdown.scenario import (
    LOAD,
    MAX_DURATION_S,
    MIN_RACES,
    ROLLOUT_TAIL_S,
    THINK_S,
    VARIANTS,
    restarts,
)
from tests.conftest import passed_check

CHECK_NAMES = {
    "hard_kill_shows_client_errors",
    "sigterm_naive_shows_client_errors",
    "aiohttp_default_loses_posts_on_pooled_connections",
    "graceful_no_client_errors_no_lost_posts",
}
CLEAN = GracefulNumbers(
    failed=0, failed_by_status={}, posts=3500, failed_posts=0, failed_gets=0,
    finished_intents=3500, orders_stored=3500, lost_posts=0, duplicates=0, mismatches=0,
    upstream_resets=0, restarts=6, replicas_restarted=3, last_start_s=25.0, drains=6,
    drain_max_s=0.31, drain_backlog_accepted=0, drain_closing_responses=40,
    drain_connections_left=0,
)  # fmt: skip


def test_rollout_restarts_every_replica_in_turn_and_starts_it_before_the_next_stop():
    steps = restarts("stop")
    stops = [s for s in steps if s.action == "stop"]
    starts = [s for s in steps if s.action == "start"]
    assert [s.replica for s in stops] == [0, 1, 2, 0, 1, 2]
    assert [s.replica for s in starts] == [s.replica for s in stops]
    for stop, start, following in zip(stops, starts, stops[1:] + [None], strict=True):
        assert stop.at_s < start.at_s
        if following is not None:
            assert start.at_s < following.at_s, "one replica down at a time"
    rollout_s = starts[-1].at_s + ROLLOUT_TAIL_S
    assert rollout_s <= 30, "locally the run ends as before, ~30 s"
    assert 3 * rollout_s <= MAX_DURATION_S, "room for a topology 3 x slower to restart"


def test_users_send_their_next_request_at_once():
    """No pause: requests keep arriving while a stopping replica's last responses come
    back, which is what makes aiohttp-default's race show in every run."""
    env = LOAD.env
    assert (float(env["LAB_THINK_MIN_S"]), float(env["LAB_THINK_MAX_S"])) == THINK_S == (0, 0)


def result(name: str, requests: int = 7000, **changes: float) -> VariantResult:
    r = VariantResult(name, 30, requests, 0, {}, 0, 0, 0, 0, 0, 0)
    r = replace(r, derived=replace(CLEAN, **changes))
    r = replace(r, extra=asdict(r.derived))
    return r


MEASURED = {  # the shape of a measured run (guide.md's ranges)
    name: result(name, failed=n, failed_posts=n, lost_posts=n, upstream_resets=resets)
    for name, n, resets in (
        ("hard-kill", 77, 148),
        ("sigterm-naive", 65, 147),
        ("aiohttp-default", 5, 12),
    )
}
MEASURED["graceful"] = result("graceful")


def test_every_variant_is_judged_and_every_check_fails_on_its_twins_numbers():
    assert {v.name: v.twin for v in VARIANTS} == {
        "hard-kill": "graceful",
        "sigterm-naive": "graceful",
        "aiohttp-default": "graceful",
        "graceful": "aiohttp-default",  # the drain is exactly what aiohttp's shutdown lacks
    }
    assert not any(v.explore for v in VARIANTS)
    checks = judge(LAB, MEASURED)
    assert [(c.name, c.passed, c.fails_without_fix) for c in checks] == [
        ("hard_kill_shows_client_errors", True, True),
        ("sigterm_naive_shows_client_errors", True, True),
        ("aiohttp_default_loses_posts_on_pooled_connections", True, True),
        ("graceful_no_client_errors_no_lost_posts", True, True),
    ]
    assert [c.value for c in checks] == [77, 65, 12, 0], "each check measures what it judges"
    assert checks[3].proof_detail.startswith("[graceful <- aiohttp-default] graceful: 5 of")


def test_the_race_check_needs_resets_a_lost_order_and_the_whole_rollout():
    (check,) = [c for c in CHECKS if c.variants == ("aiohttp-default",)]
    bare = dict(MEASURED)
    for changes, passed in (
        ({"upstream_resets": MIN_RACES, "lost_posts": 1}, True),
        ({"upstream_resets": MIN_RACES - 1, "lost_posts": 1}, False),
        ({"upstream_resets": 30, "lost_posts": 0}, False),  # GETs only: nginx hid them all
        ({"upstream_resets": 30, "lost_posts": 3, "restarts": 5}, False),
    ):
        bare["aiohttp-default"] = result("aiohttp-default", **changes)
        ok, detail = check.evaluate(bare)
        assert ok is passed, (changes, detail)
    assert "expected >= 5 resets and >= 1 lost order over 6 restarts" in detail


@pytest.mark.parametrize(
    "requests, changes",
    [(1999, {}), (7000, {"failed": 1}), (7000, {"lost_posts": 1}), (7000, {"duplicates": 1}),
     (7000, {"upstream_resets": 1}), (7000, {"restarts": 5}), (7000, {"replicas_restarted": 2})],
)  # fmt: skip
def test_a_clean_rollout_needs_every_restart_and_nothing_lost(requests, changes):
    (check,) = [c for c in CHECKS if c.variants == ("graceful",)]
    assert check.evaluate({"graceful": result("graceful")})[0]
    ok, detail = check.evaluate({"graceful": result("graceful", requests, **changes)})
    assert not ok, detail
    assert detail.endswith("over >= 2,000 requests and 6 restarts of all 3 replicas")


def test_a_run_without_numbers_is_not_passed():
    results = {**MEASURED, "graceful": VariantResult("graceful", 30, 7000, 0, {}, 0, 0, 0, 0, 0, 0)}
    checks = {c.name: c for c in judge(LAB, results)}
    graceful = checks["graceful_no_client_errors_no_lost_posts"]
    assert not graceful.passed and "has no GracefulNumbers" in graceful.detail


@pytest.mark.lab
def test_graceful_shutdown_check_errors_without_a_drain_and_none_with_one(lab_env, tmp_path: Path):
    document = passed_check("graceful-shutdown", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECK_NAMES
    assert all(c["fails_without_fix"] is True for c in document["checks"]), document["checks"]

    variants = document["variants"]
    assert set(variants) == {"hard-kill", "sigterm-naive", "aiohttp-default", "graceful"}
    for name, variant in variants.items():
        extra = variant["extra"]
        assert list(extra) == list(asdict(CLEAN)), name  # results.json's keys, unchanged
        assert extra["restarts"] == 6 and extra["replicas_restarted"] == 3, name
        assert extra["mismatches"] == 0 and extra["duplicates"] == 0, name
        # a restarted replica refuses connections while it is down: nginx moved on
        assert variant["nginx_errors"].get("connection_refused", 0) > 0, name
        # the rollout, not a fixed duration, ended the load
        assert variant["duration_s"] < extra["last_start_s"] + ROLLOUT_TAIL_S + 8, name
    for name in ("hard-kill", "sigterm-naive"):
        extra = variants[name]["extra"]
        assert extra["failed_posts"] >= 10, "POSTs die in flight"
        assert extra["failed_gets"] == 0, "nginx retried every GET on another replica"
        assert extra["lost_posts"] >= 1, "a killed request never stored its order"
    race = variants["aiohttp-default"]["extra"]
    assert race["upstream_resets"] >= MIN_RACES and race["lost_posts"] >= 1
    assert race["failed"] < variants["sigterm-naive"]["extra"]["failed"], "in-flight ones survive"
    graceful = variants["graceful"]["extra"]
    assert graceful["drain_closing_responses"] > 0, "drains answered with Connection: close"
    assert graceful["drain_connections_left"] == 0 and graceful["drain_max_s"] < 4

    run_dir = Path(document["results_dir"])
    for name in ("intents.csv", "orders.json", "requests.csv", "nginx/error.log"):
        assert (run_dir / "graceful" / name).is_file(), name
    assert "drained in" in (run_dir / "graceful/logs/api-1.log").read_text()
