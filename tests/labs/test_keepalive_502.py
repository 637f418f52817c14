"""The keep-alive 502 lab, end to end: real nginx, the api, Locust (pytest -m lab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab


def test_keepalive_502_check_reproduces_and_fixes(lab_env, tmp_path: Path):
    document = passed_check("keepalive-502", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == {
        "broken_reproduces_502",
        "broken_error_log_shows_upstream_resets",
        "broken_api_closes_idle_connections_first",
        "fixed_has_no_502",
        "fixed_reuses_connections",
        "masked_has_no_502",
        "masked_error_log_shows_upstream_resets",
        "short_pool_has_no_502_and_reuses_nothing",
    }
    # every check would fail without its fix: re-judged on its variants' twins
    assert all(c["fails_without_fix"] is True for c in document["checks"]), document["checks"]

    names = ("broken", "fixed", "masked", "short-pool")
    broken, fixed, masked, short = (document["variants"][v] for v in names)
    assert broken["status"].get("502", 0) >= 10
    assert broken["extra"]["api_closed_first"] >= 32, "the api gave up first, every run"
    assert fixed["status"].get("502", 0) == 0 and fixed["requests"] >= 200
    assert fixed["extra"]["reused_pct"] >= 80 and fixed["extra"]["api_closed_first"] == 0
    assert masked["status"].get("502", 0) == 0 and masked["upstream_retried"] > 0
    # nginx giving up first, under the traffic's 1 s gap: no 502s, and no pool either
    assert short["status"].get("502", 0) == 0 and short["extra"]["reused_pct"] <= 25
    # the client's count (X-Connection-Requests, the traffic) and the api's (every request
    # it served) agree where nothing failed
    for variant in (fixed, short):
        assert abs(variant["extra"]["reused_pct"] - variant["extra"]["api_reused_pct"]) < 10
    for variant in (broken, fixed, masked, short):
        assert {"p50_ms", "p99_ms", "nginx_errors", "series"} <= set(variant)
        assert variant["series"], "a 1 s time series"

    run_dir = Path(document["results_dir"])
    assert json.loads((run_dir / "results.json").read_text())["passed"] is True
    assert "broken_reproduces_502" in (run_dir / "report.md").read_text()
    for name in ("requests.csv", "bursts.csv", "locust_stats.csv", "locust.json",
                 "nginx/error.log"):  # fmt: skip
        assert (run_dir / "broken" / name).is_file(), name
    assert "upstream prematurely closed" in (run_dir / "broken/nginx/error.log").read_text() or (
        "Connection reset by peer" in (run_dir / "broken/nginx/error.log").read_text()
    )
