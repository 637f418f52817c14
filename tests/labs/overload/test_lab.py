"""The overload lab (labs/overload/lab.py) end to end: real nginx, the api's worker pool,
open-loop Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

CHECKS = {
    "steady_load_before_the_fault",
    "broken_load_is_open_loop",
    "broken_stays_down_after_the_trigger",
    "short_trigger_recovers_within_5s",
    "low_load_recovers_within_5s",
    "retry_budget_recovers_within_5s",
    "client_throttling_recovers_within_5s",
    "bounded_queue_recovers_within_5s",
    "adaptive_limit_recovers_within_5s",
    "client_throttling_sends_at_most_2_5x_its_accepts",
}


def test_overload_check_stays_down_under_broken_and_recovers_otherwise(overload_run: dict):
    document = overload_run  # one run, shared with test_simulate.py (conftest.py)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == {
        "broken", "short-trigger", "low-load", "retry-budget", "client-throttling",
        "bounded-queue", "adaptive-limit",
    }  # fmt: skip
    for name, variant in variants.items():
        extra = variant["extra"]
        pool = variant["services"]["api"][0]["workpool"]
        assert pool["capacity_per_s"] == 100 and pool["completed"] > 0, name
        assert extra["before"]["goodput_share"] >= 0.95, name
        assert set(extra["series"]) == {"new requests", "attempts sent", "api throughput",
                                        "goodput"}, name  # fmt: skip
    broken = variants["broken"]["extra"]
    # Busy with the wrong requests: most of what the api finished came too late.
    assert broken["api_late"] > broken["api_completed"] / 2
    assert broken["retries"] > broken["requests"]
    assert variants["bounded-queue"]["extra"]["api_shed"]["queue_full"] > 0
    assert variants["client-throttling"]["extra"]["outcomes"].get("throttled", 0) > 0
    limit = variants["adaptive-limit"]["extra"]["limit"]
    # The limit fell under the trigger and refused the excess at once; the gateway's
    # /admin/stats shows it over time.
    assert limit["lowest"] < limit["initial"] and limit["rejected"] > 0
    gateway = variants["adaptive-limit"]["services"]["gateway"][0]["adaptive_limit"]
    assert gateway["history"]["limits"] and gateway["rejected"] == limit["rejected"]

    run_dir = Path(document["results_dir"])
    plots = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert any("goodput" in p for p in plots), plots
    assert any("adaptive-concurrency-limit" in p for p in plots), plots
    table = (run_dir / "report.md").read_text().split("## Hysteresis", 1)[1]
    for name in variants:
        assert f"| {name} |" in table, name
    assert "| broken | 4.0 |" in table and "| short-trigger | 1.0 |" in table
