"""idempotency's measurements (labs/idempotency/measure.py) on synthetic runs."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext
from labs.idempotency.measure import RETRY_NAME, api_counts, derive
from labs.idempotency.scenario import NAIVE

INTENTS = """\
intent_id,key,start_s,end_s,attempts,status,outcome,order_id
a,,1.0,1.1,1,201,created,o1
b,,1.2,3.5,2,201,created,o3
c,,1.3,9.0,8,0,gave_up,
d,,1.4,1.5,1,201,created,o9
e,,1.6,0,1,0,pending,
"""
ORDERS = [
    {"id": "o1", "intent_id": "a"},
    {"id": "o2", "intent_id": "b"},  # b's first attempt: committed, response lost
    {"id": "o3", "intent_id": "b"},  # b's retry: a second order
    {"id": "o8", "intent_id": "d"},  # d was told o9: a mismatch
]


def run_folder(tmp_path: Path) -> Path:
    (tmp_path / "intents.csv").write_text(INTENTS)
    (tmp_path / "orders.json").write_text(json.dumps({"orders": ORDERS, "more": False}))
    return tmp_path


def context(tmp_path: Path) -> DeriveContext:
    requests = [
        Request(1.0, "/orders", 201, 20.0),
        Request(1.2, "/orders", 0, 1000.0),
        Request(2.3, RETRY_NAME, 201, 25.0),
        *[Request(1.3 + n, RETRY_NAME, 0, 1000.0) for n in range(7)],
    ]
    result = summarize("naive-retry", requests)
    result = replace(
        result,
        services={
            "api": [
                {"orders": {"created": 2, "replayed": 1, "lost_responses": 1}},
                {"orders": {"created": 1, "in_flight_409": 2, "key_reused_422": 1}},
                {"requests": 5},  # a replica that reports no orders section
            ]
        },
    )
    return DeriveContext(NAIVE, result, requests, run_folder(tmp_path))


def test_numbers_are_todays_extra_field_by_field(tmp_path: Path):
    numbers = derive(context(tmp_path))
    # results.json's `extra`, as the lab wrote it before its numbers were typed: the same
    # keys in the same order with the same values
    assert list(asdict(numbers).items()) == [
        ("intents", 5),
        ("finished_intents", 4),
        ("pending_intents", 1),
        ("orders_stored", 4),
        ("duplicates", 1),
        ("duplicate_pct", 25.0),
        ("duplicated_intents", 1),
        ("lost", 1),
        ("confirmed_missing", 0),
        ("mismatches", 1),
        ("listing_truncated", False),
        ("client_retries", 8),
        ("client_gave_up", 1),
        ("api_created", 3),
        ("api_replayed", 1),
        ("api_lost_responses", 1),
        ("api_in_flight_409", 2),
        ("api_key_reused_422", 1),
    ]
    assert numbers.wrong == 1 + 1 + 1 + 1  # duplicates, lost, mismatches, gave up
    field = "duplicates"
    with pytest.raises(FrozenInstanceError):
        setattr(numbers, field, 0)


def test_a_run_with_nothing_collected_reads_as_zero(tmp_path: Path):
    result = summarize("idempotency-key", [])
    numbers = derive(DeriveContext(NAIVE, result, [], tmp_path))
    assert asdict(numbers) == {field: 0 for field in asdict(numbers)} | {
        "duplicate_pct": 0.0,
        "listing_truncated": False,
    }


def test_api_counts_sum_the_replicas_and_skip_what_is_not_a_number(tmp_path: Path):
    result = context(tmp_path).result
    result.services["api"].append({"orders": {"created": "many", "replayed": 2.0}})
    counts = api_counts(result)
    assert (counts["created"], counts["replayed"], counts["in_flight_409"]) == (3, 3, 2)
