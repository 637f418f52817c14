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
        "fixed_has_no_502",
        "masked_has_no_502",
        "masked_error_log_shows_upstream_resets",
    }

    broken, fixed, masked = (document["variants"][v] for v in ("broken", "fixed", "masked"))
    assert broken["status"].get("502", 0) >= 10
    assert fixed["status"].get("502", 0) == 0 and fixed["requests"] >= 200
    assert masked["status"].get("502", 0) == 0 and masked["upstream_retried"] > 0
    for variant in (broken, fixed, masked):
        assert {"p50_ms", "p99_ms", "nginx_errors", "series"} <= set(variant)
        assert variant["series"], "a 1 s time series"

    run_dir = Path(document["results_dir"])
    assert json.loads((run_dir / "results.json").read_text())["passed"] is True
    assert "broken_reproduces_502" in (run_dir / "report.md").read_text()
    for name in ("requests.csv", "locust_stats.csv", "locust.json", "nginx/error.log"):
        assert (run_dir / "broken" / name).is_file(), name
    assert "upstream prematurely closed" in (run_dir / "broken/nginx/error.log").read_text() or (
        "Connection reset by peer" in (run_dir / "broken/nginx/error.log").read_text()
    )
