"""The circuit-breaker lab (labs/circuit_breaker/lab.py) end to end: real nginx, gateway,
payments and catalog apis, Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab

CHECKS = {
    "steady_load_before_the_fault",
    "naive_catalog_cascades_10x_breaker",
    "breaker_catalog_unaffected",
    "breaker_checkout_fails_fast_while_open",
    "breaker_opens_probes_and_closes",
}


def test_circuit_breaker_check_cascade_under_naive_contained_under_breaker(lab_env, tmp_path: Path):
    document = passed_check("circuit-breaker", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == {"naive", "timeouts", "bulkhead", "breaker"}
    for name, variant in variants.items():
        extra = variant["extra"]
        for endpoint in ("checkout", "catalog"):
            numbers = extra[endpoint]
            assert numbers["before_requests"] >= 50 and numbers["during_requests"] > 0, name
            assert numbers["gateway_calls"], name
        gateway = variant["services"]["gateway"][0]
        assert set(gateway["downstreams"]) == {"payments", "catalog"}, name
        assert any(s["service"] == "gateway" for s in variant["samples"]), name
    # Only the naive gateway waits as long as it takes: nothing fails, everything is slow.
    assert variants["naive"]["failures"] == 0
    assert variants["naive"]["extra"]["checkout_p99_during_ms"] >= 4000
    # The timeouts variant turns the wait into errors; the bulkhead refuses the excess.
    assert "timeout" in variants["timeouts"]["extra"]["checkout"]["gateway_calls"]
    assert variants["bulkhead"]["extra"]["checkout"]["gateway_calls"].get("bulkhead_full", 0) > 0
    breaker = variants["breaker"]["extra"]
    assert breaker["checkout"]["gateway_calls"]["breaker_open"] > 100
    assert breaker["final_state"] == "closed" and breaker["breaker_state"]

    run_dir = Path(document["results_dir"])
    plots = {p.name for p in (run_dir / "plots").glob("*.png")}
    assert any("breaker" in p for p in plots) and any("in-flight" in p for p in plots), plots
