"""The idempotency lab, end to end: real nginx, 3 api replicas, Redis, Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab

CHECKS = {
    "naive_retry_duplicates_orders",
    "idempotency_key_no_duplicates_no_lost",
    "local_keys_duplicates_orders",
}


def test_idempotency_check_duplicates_without_keys_and_none_with_them(lab_env, tmp_path: Path):
    document = passed_check("idempotency", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == {"naive-retry", "idempotency-key", "local-keys"}
    for name, variant in variants.items():
        extra = variant["extra"]
        # each stored order is one finished intent's, a duplicate, or a cut-off intent's
        baseline = extra["finished_intents"] - extra["lost"] + extra["duplicates"]
        assert baseline <= extra["orders_stored"] <= baseline + extra["pending_intents"], name
        assert extra["mismatches"] == 0 and not extra["listing_truncated"], name
        assert extra["api_lost_responses"] >= 10, name
        replicas = variant["services"]["api"]
        assert len(replicas) == 3 and all(r["orders"]["created"] > 0 for r in replicas), name
    keyed = variants["idempotency-key"]["extra"]
    assert keyed["api_replayed"] >= 10 and keyed["orders_stored"] >= keyed["finished_intents"]

    run_dir = Path(document["results_dir"])
    for name in ("intents.csv", "orders.json", "requests.csv", "nginx/access.log"):
        assert (run_dir / "naive-retry" / name).is_file(), name
