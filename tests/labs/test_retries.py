"""The retries lab, end to end: real nginx, gateway, api, Locust (pytest -m lab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab

CHECKS = {
    "load_ran_before_the_incident",
    "immediate_amplifies_3x_full_jitter",
    "exponential_waves_2x_full_jitter",
    "full_jitter_succeeds_where_exponential_fails",
    "layers_multiply_attempts",
    "budget_caps_amplification",
}


def test_retries_check_shows_storms_waves_and_their_fixes(lab_env, tmp_path: Path):
    document = passed_check("retries", lab_env, tmp_path, timeout=300)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == {
        "no-retry", "immediate", "exponential", "full-jitter", "decorrelated-jitter",
        "budget", "layers",
    }  # fmt: skip
    for name, variant in variants.items():
        extra = variant["extra"]
        assert extra["client_requests"] >= 500, name
        assert 0.9 <= extra["attempts_accounted"] <= 1.01, (name, extra["attempts_accounted"])
        arrivals = variant["services"]["api"][0]["arrivals"]
        assert arrivals["bucket_s"] == 0.1 and len(arrivals["counts"]) >= 100
        assert len(variant["events"]) == 3, "stall, crash, cold restart"
        # the users are served again at the end: nobody is stuck in a call outlasting the run
        # (decorrelated jitter's long waits keep ~45 % of them retrying to the end)
        assert extra["final_success_rate"] >= 0.99, name
        assert extra["final_rate_share"] >= (0.3 if name == "decorrelated-jitter" else 0.5), name
    # counted by the api in the buckets where only the failed requests reached it: a lower
    # bound on the 1 (no retries) and 12 (4 client x 3 gateway attempts) they cost
    no_retry, layers = (variants[n]["extra"] for n in ("no-retry", "layers"))
    assert 0.9 <= no_retry["attempts_per_failed_request"] <= 1.0, no_retry
    assert layers["alone_at_api_s"] >= 3.0, layers
    assert variants["budget"]["extra"]["budget_denied"] > 0

    run_dir = Path(document["results_dir"])
    assert json.loads((run_dir / "results.json").read_text())["passed"] is True
    for name in ("requests.csv", "logical.csv", "locust.json", "nginx/access.log"):
        assert (run_dir / "exponential" / name).is_file(), name
