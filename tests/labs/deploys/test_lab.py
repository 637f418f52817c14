"""The deploys lab (labs/deploys/lab.py): its checks judged on synthetic numbers (fast),
and the lab end to end: real nginx reloads, 2 api releases, Locust (pytest -m lab)."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.deploys.lab import LAB, v2_share
from labs.deploys.measure import DeploysNumbers
from labs.engine.analysis.metrics import VariantResult, summarize
from labs.engine.model.verdicts import judge
from tests.conftest import passed_check

CHECKS = {
    "big_bang_fails_requests_in_the_gap",
    "blue_green_reloads_fail_no_request",
    "canary_reloads_fail_no_request",
    "canary_limits_the_bad_release",
    "canary_rolls_back_within_a_gate_interval",
    "blue_green_rolls_back_within_a_gate_interval",
    "cold_start_full_p99_spikes",
    "ramp_removes_the_cold_start_spike",
}
NAN = math.nan
CANARY = DeploysNumbers(
    requests=3525, failed=1, proxy_failed=0, v2_answers=4, v2_failed=1, reloads=2,
    deploy_s=4.573, crossing_s=5.931, last_v2_s=6.423, rollback_lag_s=0.493,
    p99_window_ms=4.1, decisions=("4.57 s: v2 1% (0.023 s)",),
)  # fmt: skip
"""Numbers like the run measured here (2026-12-06)."""
MEASURED = {
    "big-bang": replace(CANARY, failed=856, proxy_failed=136, v2_answers=2463, v2_failed=720,
                        reloads=1, crossing_s=5.365, last_v2_s=17.778, rollback_lag_s=12.413),
    "blue-green": replace(CANARY, failed=62, v2_answers=217, v2_failed=62, crossing_s=4.886,
                          last_v2_s=5.909, rollback_lag_s=1.023),
    "canary": CANARY,
    "cold-start-full": replace(CANARY, failed=0, v2_failed=0, reloads=1, crossing_s=NAN,
                               rollback_lag_s=NAN, p99_window_ms=685.4),
    "cold-start-ramped": replace(CANARY, failed=0, v2_failed=0, reloads=5, crossing_s=NAN,
                                 rollback_lag_s=NAN, p99_window_ms=27.4),
}  # fmt: skip


def results(**changes: DeploysNumbers) -> dict[str, VariantResult]:
    numbers = {**MEASURED, **changes}
    return {name: summarize(name, []).with_derived(n) for name, n in numbers.items()}


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, results())}
    assert set(checks) == CHECKS
    assert all(c.passed and c.fails_without_fix is True for c in checks.values()), checks
    assert checks["canary_limits_the_bad_release"].detail == (
        "failed requests: canary 1 vs big-bang 856 (0.001x), expected canary <= 0.1 x "
        "big-bang = 85.6"
    )
    assert checks["canary_rolls_back_within_a_gate_interval"].value == 0.493
    assert checks["ramp_removes_the_cold_start_spike"].value == pytest.approx(27.4 / 685.4)


def test_each_failure_shows_in_its_check():
    def failing(**changes: DeploysNumbers) -> set[str]:
        return {c.name for c in judge(LAB, results(**changes)) if not c.passed}

    assert failing(canary=replace(CANARY, proxy_failed=1)) == {"canary_reloads_fail_no_request"}
    assert failing(canary=replace(CANARY, failed=90)) == {"canary_limits_the_bad_release"}
    late = replace(CANARY, rollback_lag_s=1.6)
    assert failing(canary=late) == {"canary_rolls_back_within_a_gate_interval"}
    never = replace(CANARY, rollback_lag_s=NAN)
    assert failing(canary=never) == {"canary_rolls_back_within_a_gate_interval"}
    ramped = replace(MEASURED["cold-start-ramped"], p99_window_ms=210.0)
    assert failing(**{"cold-start-ramped": ramped}) == {"ramp_removes_the_cold_start_spike"}


@pytest.mark.lab
def test_deploys_check_reloads_fail_nothing_and_the_gate_rolls_back(lab_env, tmp_path: Path):
    document = passed_check("deploys", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    variants = document["variants"]
    for name, variant in variants.items():
        extra = variant["extra"]
        assert list(extra) == list(asdict(CANARY)), name  # results.json's keys, unchanged
        assert extra["decisions"], name
        releases = [r.get("release", {}).get("name") for r in variant["services"]["api"]]
        assert releases[1] == "v2", name  # big-bang's v1 is stopped by then
        assert name == "big-bang" or releases[0] == "v1", name
    assert variants["canary"]["extra"]["v2_answers"] < variants["blue-green"]["extra"]["v2_answers"]
    report = (Path(document["results_dir"]) / "report.md").read_text()
    assert "## Rollout decisions" in report and "rollback" in report


def test_the_share_plot_steps_with_each_reload():
    events: list[dict[str, object]] = [
        {"t_s": 4.6, "what": "fault", "action": "weights", "weights": [99, 1]},
        {"t_s": 5.0, "what": "decision", "decision": "gate"},
        {"t_s": 6.7, "what": "fault", "action": "weights", "weights": [100, 0]},
    ]
    result = replace(summarize("canary", []), events=events, duration_s=18.0)
    assert v2_share(result) == {"v2 share %": ([0.0, 4.6, 6.7, 18.0], [0.0, 1.0, 0.0, 0.0])}
