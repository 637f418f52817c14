"""keepalive-502's measurements (labs/keepalive_502/measure.py) on synthetic runs."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext
from labs.keepalive_502.measure import (
    Burst,
    KeepaliveNumbers,
    api_connections,
    derive,
    read_bursts,
    traffic_reuse,
)
from labs.keepalive_502.scenario import BROKEN

BURSTS = """\
burst,gap_ms,offset_ms,fired_s,requests,status_502,no_response,reused
0,,,100.000000,32,0,0,0
1,1000,-4.1,101.000000,32,0,0,32
2,1100,-7.1,102.100000,32,0,0,0
3,1000,-2.2,103.100000,32,5,0,20
4,900,-5.2,104.000000,32,0,0,32
"""
REPLICAS = [
    {"connections": {"requests": 10, "reused": 8, "opened": 2, "closed_first": 3}},
    {"connections": {"requests": 10, "reused": 6, "opened": 4, "closed_first": 1}},
]


def context(tmp_path: Path, bursts: str | None = BURSTS) -> DeriveContext:
    if bursts is not None:
        (tmp_path / "bursts.csv").write_text(bursts)
    requests = [Request(100.0 + i * 0.01, "/work", 200, 5.0) for i in range(160)]
    result = summarize("broken", requests)
    result = replace(result, services={"api": [dict(r) for r in REPLICAS]})
    return DeriveContext(BROKEN, result, requests, tmp_path)


def test_numbers_are_todays_extra_field_by_field(tmp_path: Path):
    numbers = derive(context(tmp_path))
    # results.json's `extra`, as the lab wrote it before its numbers were typed: the same
    # keys in the same order with the same values
    assert list(asdict(numbers).items()) == [
        ("traffic_requests", 64),  # bursts 1 and 3
        ("reused_pct", 81.2),  # 52 of 64
        ("api_reused_pct", 70.0),  # 14 of 20
        ("api_closed_first", 4),
    ]
    assert numbers.serves_traffic(64) and not numbers.serves_traffic(65)
    field = "traffic_requests"
    with pytest.raises(FrozenInstanceError):
        setattr(numbers, field, 0)


def test_a_run_with_nothing_measured_has_no_reuse_and_fails_every_bound(tmp_path: Path):
    result = summarize("broken", [])
    numbers = derive(DeriveContext(BROKEN, result, [], tmp_path))
    assert asdict(numbers) == {
        "traffic_requests": 0,
        "reused_pct": None,
        "api_reused_pct": None,
        "api_closed_first": 0,  # no replica answered: none counted
    }
    assert math.isnan(numbers.reused) and not numbers.serves_traffic(0)
    assert numbers.reuse_text() == "n/a of the traffic rode a reused connection"


def test_traffic_reuse_counts_the_bursts_after_the_traffics_gap(tmp_path: Path):
    path = tmp_path / "bursts.csv"
    path.write_text(BURSTS)
    bursts = read_bursts(path)
    assert bursts[:2] == (Burst(None, 32, 0), Burst(1000.0, 32, 32))
    assert traffic_reuse(bursts) == (64, 52)  # bursts 1 and 3
    assert read_bursts(tmp_path / "missing.csv") == ()


def test_api_connections_sums_replicas_and_unknown_stays_unknown(tmp_path: Path):
    result = context(tmp_path).result
    assert api_connections(result) == (20, 14, 4)
    result.services["api"][1] = {"connections": {"requests": 10, "reused": 6, "closed_first": None}}
    assert api_connections(result) == (20, 14, None)
    result.services["api"][1] = {}  # a replica that did not answer
    assert api_connections(result) == (10, 8, None)
    numbers = KeepaliveNumbers(64, 81.2, 70.0, None)
    assert math.isnan(numbers.closed_first)
    assert numbers.closed_text() == (
        "who closed idle connections first is unknown (no /proc/net/tcp, or no stats)"
    )
    assert KeepaliveNumbers(64, 81.2, 70.0, 1).closed_text() == (
        "the api closed 1 idle connection first"
    )
