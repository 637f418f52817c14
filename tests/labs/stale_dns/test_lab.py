"""The stale-dns lab (labs/stale_dns/lab.py): its checks judged on synthetic numbers
(fast), and the lab end to end: real nginx, dnsmasq, the api moving, Locust (-m lab)."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from labs.stale_dns.lab import LAB
from labs.stale_dns.measure import StaleDnsNumbers
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "resolve_once_keeps_the_dead_address",
    "resolver_follows_the_move",
    "reload_follows_the_move",
}
RESOLVER = StaleDnsNumbers(
    move_s=4.59, moved_s=5.23, reload_s=math.nan, before_requests=1204, before_failed=0,
    after_requests=2219, after_failed=381, after_failed_pct=17.17, settled_requests=1450,
    settled_failed=0, last_failure_s=1.469,
)  # fmt: skip
"""A run like the ones measured here (local topology, 2026-12-06)."""
STALE = replace(
    RESOLVER, after_failed=2219, after_failed_pct=100.0, settled_failed=1450, last_failure_s=8.8
)


def measured(**reload: object) -> dict[str, VariantResult]:
    reloaded = replace(RESOLVER, reload_s=5.0, after_failed=25, last_failure_s=0.09)
    return {
        "resolve-once": empty_run("resolve-once", STALE),
        "resolver": empty_run("resolver", RESOLVER),
        "reload": empty_run("reload", replace(reloaded, **reload)),
    }


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed and c.fails_without_fix is True for c in checks.values()), checks
    assert checks["resolve_once_keeps_the_dead_address"].detail == (
        "resolve-once: after the move 2219 of 2219 failed (100.0 %), before it 0 of 1204 "
        "failed (0.0 %) (the move ran 4.6-5.2 s); expected >= 90 % failed after, 0 before, "
        "over >= 100 requests"
    )
    assert checks["resolver_follows_the_move"].detail == (
        "resolver: from 3 s after the move on 0 of 1450 failed (0.0 %) (the move ran "
        "4.6-5.2 s; last failure 1.5 s after it); expected 0 over >= 100 requests"
    )
    assert checks["resolve_once_keeps_the_dead_address"].value == 100.0


def test_a_late_failure_or_too_few_requests_fail_and_no_numbers_is_not_passed():
    checks = {c.name: c for c in judge(LAB, measured(settled_failed=1))}
    assert not checks["reload_follows_the_move"].passed
    checks = {c.name: c for c in judge(LAB, measured(settled_requests=99))}
    assert not checks["reload_follows_the_move"].passed
    results = {**measured(), "resolver": empty_run("resolver", None)}
    resolver = {c.name: c for c in judge(LAB, results)}["resolver_follows_the_move"]
    assert not resolver.passed and "has no StaleDnsNumbers" in resolver.detail


@pytest.mark.lab
def test_stale_dns_check_fails_requests_until_nginx_resolves_again(lab_env, tmp_path: Path):
    document = passed_check("stale-dns", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    variants = document["variants"]
    assert set(variants) == {"resolve-once", "resolver", "reload"}
    for name, variant in variants.items():
        assert list(variant["extra"]) == list(asdict(RESOLVER)), name
        (move, *rest) = variant["events"]
        assert move["action"] == "move" and move["processes"] == ["api-1"], name
        assert [e["action"] for e in rest] == (["reload"] if name == "reload" else []), name
    # nginx kept connecting to the old address: refused, once it was gone
    assert variants["resolve-once"]["nginx_errors"]["connection_refused"] >= 100
    run_dir = Path(document["results_dir"])
    conf = (run_dir / "resolver" / "nginx" / "nginx.conf").read_text()
    assert "resolver 127.0.0.9 valid=1s ipv6=off;" in conf and "proxy_pass $backend_url;" in conf
    assert "server api.lab:" in (run_dir / "resolve-once" / "nginx" / "nginx.conf").read_text()
