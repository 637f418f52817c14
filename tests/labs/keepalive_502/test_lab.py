"""The keep-alive 502 lab (labs/keepalive_502/lab.py): its checks judged on synthetic
numbers (fast), and the lab end to end: real nginx, the api, Locust (pytest -m lab)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.verdicts import judge
from labs.keepalive_502.lab import LAB
from labs.keepalive_502.measure import KeepaliveNumbers
from tests.conftest import passed_check

CHECKS = {
    "broken_reproduces_502",
    "broken_error_log_shows_upstream_resets",
    "broken_api_closes_idle_connections_first",
    "fixed_has_no_502",
    "fixed_reuses_connections",
    "masked_has_no_502",
    "masked_error_log_shows_upstream_resets",
    "short_pool_has_no_502_and_reuses_nothing",
}
MEASURED = {
    "broken": (1050, 70, 70, KeepaliveNumbers(1000, 55.1, 52.3, 301)),
    "fixed": (1120, 0, 0, KeepaliveNumbers(1088, 100.0, 99.1, 0)),
    "masked": (1120, 0, 40, KeepaliveNumbers(1088, 60.2, 58.7, 290)),
    "short-pool": (1120, 0, 0, KeepaliveNumbers(1088, 4.1, 5.0, 2)),
}
"""(requests, 502s, upstream resets in nginx's log, numbers): runs like those measured here."""


def result(variant: str, requests: int, bad: int, resets: int, n: KeepaliveNumbers | None):
    rows = [
        Request(100.0 + i * 0.03, "/work", 502 if i < bad else 200, 5.0) for i in range(requests)
    ]
    r = replace(summarize(variant, rows), nginx_errors={"upstream_prematurely_closed": resets})
    return r if n is None else r.with_derived(n)


def measured(**replaced: KeepaliveNumbers | None) -> dict[str, VariantResult]:
    return {
        name: result(name, requests, bad, resets, replaced.get(name, n))
        for name, (requests, bad, resets, n) in MEASURED.items()
    }


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    failed = {name: c.detail for name, c in checks.items() if not c.passed}
    assert not failed
    unproven = {
        name: c.proof_detail for name, c in checks.items() if c.fails_without_fix is not True
    }
    assert not unproven
    assert checks["broken_api_closes_idle_connections_first"].detail == (
        "idle connections the api closed first, while nginx still held them: broken 301, "
        "expected >= 32"
    )
    assert checks["fixed_reuses_connections"].detail == (
        "fixed: 100 % of the traffic rode a reused connection (1088 requests), expected >= 80 % "
        "of >= 200"
    )
    assert checks["short_pool_has_no_502_and_reuses_nothing"].detail == (
        "short-pool: 0 of 1120 were 502 and 4 % of the traffic rode a reused connection, "
        "expected 0 502s and <= 25 % reused"
    )
    values = {name: c.value for name, c in checks.items()}
    assert values["broken_api_closes_idle_connections_first"] == 301
    assert values["fixed_reuses_connections"] == 100.0
    assert values["short_pool_has_no_502_and_reuses_nothing"] == 4.1


def test_unknown_or_missing_numbers_fail_the_checks_that_need_them():
    unknown = KeepaliveNumbers(1000, 55.1, 52.3, None)  # no /proc/net/tcp
    checks = {c.name: c for c in judge(LAB, measured(broken=unknown))}
    assert not checks["broken_api_closes_idle_connections_first"].passed
    checks = {c.name: c for c in judge(LAB, measured(fixed=KeepaliveNumbers(0, None, None, 0)))}
    assert not checks["fixed_reuses_connections"].passed
    checks = {c.name: c for c in judge(LAB, measured(fixed=None))}
    reuse = checks["fixed_reuses_connections"]
    assert not reuse.passed and "has no KeepaliveNumbers" in reuse.detail


@pytest.mark.lab
def test_keepalive_502_check_reproduces_and_fixes(lab_env, tmp_path: Path):
    document = passed_check("keepalive-502", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS
    # every check would fail without its fix: re-judged on its variants' twins
    assert all(c["fails_without_fix"] is True for c in document["checks"]), document["checks"]

    names = ("broken", "fixed", "masked", "short-pool")
    broken, fixed, masked, short = (document["variants"][v] for v in names)
    for variant in (broken, fixed, masked, short):  # results.json's keys, unchanged
        assert list(variant["extra"]) == list(asdict(MEASURED["fixed"][3]))
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
