"""The idempotency lab (labs/idempotency/lab.py): its checks judged on synthetic numbers
(fast), and the lab end to end: real nginx, 3 api replicas, Redis, Locust (pytest -m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from labs.idempotency.lab import LAB
from labs.idempotency.measure import IdempotencyNumbers
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "naive_retry_duplicates_orders",
    "idempotency_key_no_duplicates_no_lost",
    "local_keys_duplicates_orders",
}
KEYED = IdempotencyNumbers(
    intents=875, finished_intents=870, pending_intents=5, orders_stored=870, duplicates=0,
    duplicate_pct=0.0, duplicated_intents=0, lost=0, confirmed_missing=0, mismatches=0,
    listing_truncated=False, client_retries=57, client_gave_up=0, api_created=870,
    api_replayed=57, api_lost_responses=57, api_in_flight_409=0, api_key_reused_422=0,
)  # fmt: skip
"""A run like the one measured here (results of 2026-12-04)."""


def measured(**local_keys: object) -> dict[str, VariantResult]:
    naive = replace(KEYED, duplicates=57, duplicate_pct=6.69, api_replayed=0)
    local = replace(KEYED, duplicates=36, duplicate_pct=4.16, api_replayed=21)
    return {
        "naive-retry": empty_run("naive-retry", naive),
        "idempotency-key": empty_run("idempotency-key", KEYED),
        "local-keys": empty_run("local-keys", replace(local, **local_keys)),
    }


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed and c.fails_without_fix is True for c in checks.values()), checks
    assert checks["naive_retry_duplicates_orders"].detail == (
        "naive-retry: 57 duplicate orders for 870 intended (6.7 %; 57 responses lost after "
        "commit, 57 client retries), expected >= 1 % over >= 300 intents"
    )
    assert checks["idempotency_key_no_duplicates_no_lost"].value == 0
    assert checks["local_keys_duplicates_orders"].value == 4.16


def test_too_few_intents_or_duplicates_fail_and_a_run_without_numbers_is_not_passed():
    checks = {c.name: c for c in judge(LAB, measured(finished_intents=299))}
    assert not checks["local_keys_duplicates_orders"].passed
    checks = {c.name: c for c in judge(LAB, measured(duplicate_pct=0.9))}
    assert not checks["local_keys_duplicates_orders"].passed
    results = {**measured(), "idempotency-key": empty_run("idempotency-key", None)}
    checks = {c.name: c for c in judge(LAB, results)}
    keyed = checks["idempotency_key_no_duplicates_no_lost"]
    assert not keyed.passed and "has no IdempotencyNumbers" in keyed.detail


@pytest.mark.lab
def test_idempotency_check_duplicates_without_keys_and_none_with_them(lab_env, tmp_path: Path):
    document = passed_check("idempotency", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == {"naive-retry", "idempotency-key", "local-keys"}
    for name, variant in variants.items():
        extra = variant["extra"]
        assert list(extra) == list(asdict(KEYED)), name  # results.json's keys, unchanged
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
