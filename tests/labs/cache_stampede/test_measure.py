"""cache-stampede's measurements (labs/cache_stampede/measure.py) on synthetic runs."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from labs.cache_stampede.measure import bursts, derive
from labs.cache_stampede.scenario import CACHED
from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext

T0 = 1_000.0


def test_bursts_split_where_the_origin_was_quiet_for_more_than_the_gap():
    starts = [T0, T0 + 0.01, T0 + 2.4, T0 + 2.5, T0 + 2.6, T0 + 4.9, T0 + 7.3]
    assert bursts(starts) == (2, 3, 1, 1)
    assert bursts([]) == ()
    assert bursts([T0 + 3, T0]) == (1, 1)  # sorted first


def context(tmp_path: Path) -> DeriveContext:
    """A cold fill of 1, then two expiries of 3 and 5 computations; requests before and
    after the warm-up, two of them failing inside an outage from 5 s to 7 s."""
    starts = [T0 + 0.1, T0 + 2.5, T0 + 2.6, T0 + 2.7, *(T0 + 5.0 + i / 10 for i in range(5))]
    requests = [
        Request(T0, "/hot", 200, 450.0),
        Request(T0 + 1.0, "/hot", 200, 1.0),
        *(Request(T0 + 3.0 + i / 100, "/hot", 200, 2.0) for i in range(98)),
        Request(T0 + 5.5, "/hot", 500, 400.0),
        Request(T0 + 6.0, "/hot", 500, 420.0),
    ]
    stats = {"computation_starts": starts, "failed_computations": 2}
    events = [
        {"what": "fault", "t_s": 5.0, "service": "origin", "settings": {"error_status": 500}},
        {"what": "fault", "t_s": 7.0, "service": "origin", "settings": {"error_status": 0}},
    ]
    result = replace(
        summarize("cache", requests), origin_s=T0, services={"origin": [stats]}, events=events
    )
    return DeriveContext(CACHED, result, requests, tmp_path)


def test_derive_counts_per_expiry_from_the_origins_own_starts(tmp_path: Path):
    n = derive(context(tmp_path))
    assert (n.computations, n.failed_computations, n.cold_fill) == (9, 2, 1)
    assert (n.expiries, n.per_expiry, n.per_expiry_max) == (2, 4.0, 5)
    assert (n.warm_requests, n.warm_p50_ms, n.warm_p99_ms) == (100, 2.0, 400.0)  # nearest rank
    assert (n.outage_requests, n.outage_served_pct) == (2, 0.0)
    xs, ys = n.computations_per_s
    assert xs[1] == 0.1 and ys[1] == 10.0 and sum(ys) / 10 == 9
    field = "per_expiry"
    with pytest.raises(FrozenInstanceError):
        setattr(n, field, 0)


def test_a_run_with_nothing_collected_reads_as_zero(tmp_path: Path):
    n = derive(DeriveContext(CACHED, summarize("cache", []), [], tmp_path))
    assert (n.computations, n.cold_fill, n.expiries, n.per_expiry) == (0, 0, 0, 0.0)
    assert (n.outage_requests, n.outage_served_pct) == (0, 100.0)  # no outage
