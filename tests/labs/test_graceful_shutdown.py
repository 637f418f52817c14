"""The graceful-shutdown lab, end to end: real nginx, 3 api replicas restarted one after
another under load, Redis, Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.graceful_shutdown import lab
from tests.conftest import passed_check

pytestmark = pytest.mark.lab

CHECKS = {
    "hard_kill_shows_client_errors",
    "sigterm_naive_shows_client_errors",
    "aiohttp_default_loses_posts_on_pooled_connections",
    "graceful_no_client_errors_no_lost_posts",
}


def test_graceful_shutdown_check_errors_without_a_drain_and_none_with_one(lab_env, tmp_path: Path):
    document = passed_check("graceful-shutdown", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS
    assert all(c["fails_without_fix"] is True for c in document["checks"]), document["checks"]

    variants = document["variants"]
    assert set(variants) == {"hard-kill", "sigterm-naive", "aiohttp-default", "graceful"}
    for name, variant in variants.items():
        extra = variant["extra"]
        assert extra["restarts"] == 6 and extra["replicas_restarted"] == 3, name
        assert extra["mismatches"] == 0 and extra["duplicates"] == 0, name
        # a restarted replica refuses connections while it is down: nginx moved on
        assert variant["nginx_errors"].get("connection_refused", 0) > 0, name
        # the rollout, not a fixed duration, ended the load
        assert variant["duration_s"] < extra["last_start_s"] + lab.ROLLOUT_TAIL_S + 8, name
    for name in ("hard-kill", "sigterm-naive"):
        extra = variants[name]["extra"]
        assert extra["failed_posts"] >= 10, "POSTs die in flight"
        assert extra["failed_gets"] == 0, "nginx retried every GET on another replica"
        assert extra["lost_posts"] >= 1, "a killed request never stored its order"
    race = variants["aiohttp-default"]["extra"]
    assert race["upstream_resets"] >= lab.MIN_RACES and race["lost_posts"] >= 1
    assert race["failed"] < variants["sigterm-naive"]["extra"]["failed"], "in-flight ones survive"
    graceful = variants["graceful"]["extra"]
    assert graceful["drain_closing_responses"] > 0, "drains answered with Connection: close"
    assert graceful["drain_connections_left"] == 0 and graceful["drain_max_s"] < 4

    run_dir = Path(document["results_dir"])
    for name in ("intents.csv", "orders.json", "requests.csv", "nginx/error.log"):
        assert (run_dir / "graceful" / name).is_file(), name
    assert "drained in" in (run_dir / "graceful/logs/api-1.log").read_text()
