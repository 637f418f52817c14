"""rate-limit's measurements (labs/rate_limit/measure.py): per-tenant numbers, the rates
before and after a stop fault, the 429 headers file, and `derive`'s typed numbers whose
JSON view is results.json's `extra` (fast, no processes)."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext
from labs.rate_limit.measure import (
    HEADERS_FILE,
    HeaderCounts,
    RateLimitNumbers,
    TenantNumbers,
    Tenants,
    derive,
    tenant_numbers,
)
from labs.rate_limit.scenario import REDIS, REDIS_DOWN

ORIGIN = 1_000.0
HEADERS = {
    "noisy": {"429": 400, "retry_after": 400, "problem_json": 399},
    "quiet": {"429": 1, "retry_after": 1},
}
"""What loadtests/tenants.py writes: only the counts that occurred."""


def test_tenant_numbers_measure_the_steady_rate_after_the_initial_burst():
    # 10 s of 100 offers/s: a burst of 30 admitted in the first 0.1 s, then 1 per 100 ms
    requests = [Request(ORIGIN + i / 100, "noisy", 200 if i < 30 or i % 10 == 0 else 429, 2.0)
                for i in range(1000)]  # fmt: skip
    numbers = tenant_numbers(requests)
    assert numbers.offered_rps == pytest.approx(100, rel=0.01)
    assert numbers.accepted_rps == pytest.approx(10, rel=0.02), "the burst is not steady"
    assert numbers.accepted_first_window == 30 + 2  # first 0.5 s: the burst, then 0.3 and 0.4 s
    assert numbers.limited == 1000 - numbers.accepted
    assert numbers.accepted_per_s[:2] == (30 + 7, 10)
    assert tenant_numbers([]) == TenantNumbers()


def noisy_and_quiet() -> list[Request]:
    """20 s: noisy offers 50/s, 10/s accepted until t = 10 s, then all of it; quiet sends
    4/s, one of them refused and one an error."""
    noisy = [Request(ORIGIN + i / 50, "noisy", 200 if i % 5 == 0 or i >= 500 else 429, 3.0)
             for i in range(1000)]  # fmt: skip
    quiet = [Request(ORIGIN + 0.1 + i / 4, "quiet", 200, 5.0 + i) for i in range(78)]
    quiet += [Request(ORIGIN + 19.7, "quiet", 429, 1.0), Request(ORIGIN + 19.9, "quiet", 503, 1.0)]
    return noisy + quiet


def context(tmp_path: Path, stop_at_s: float | None) -> DeriveContext:
    requests = noisy_and_quiet()
    result = summarize("redis-down", requests)
    if stop_at_s is not None:
        result = replace(result, events=[{"t_s": stop_at_s, "what": "fault", "action": "stop",
                          "service": "redis", "processes": ["redis"]}])  # fmt: skip
    (tmp_path / HEADERS_FILE).write_text(json.dumps(HEADERS))
    return DeriveContext(REDIS_DOWN, result, requests, tmp_path)


def test_numbers_are_todays_extra_field_by_field(tmp_path: Path):
    numbers = derive(context(tmp_path, stop_at_s=10.0))
    extra = asdict(numbers)
    # results.json's `extra`, as the lab wrote it before its numbers were typed: the same
    # keys in the same order
    assert list(extra) == [
        "limit_rps", "noisy_offered_rps", "noisy_accepted_rps", "accepted_over_limit",
        "quiet_success_pct", "quiet_p99_ms", "tenants", "headers_of_429", "fault_at_s",
        "noisy_accepted_rps_before", "noisy_accepted_rps_after",
    ]  # fmt: skip
    assert list(extra["tenants"]) == ["noisy", "quiet"]
    assert list(extra["tenants"]["noisy"]) == [
        "requests", "accepted", "limited", "errors", "offered_rps", "accepted_rps",
        "accepted_first_window", "success_pct", "p99_ms", "accepted_per_s", "first_s",
    ]  # fmt: skip
    noisy = numbers.tenants.noisy
    assert (noisy.requests, noisy.accepted, noisy.limited, noisy.errors) == (1000, 600, 400, 0)
    assert noisy.accepted_per_s[:3] == (10, 10, 10) and noisy.accepted_per_s[-1] == 50
    assert noisy.first_s == ORIGIN and noisy.accepted_first_window == 5
    assert numbers.noisy_offered_rps == noisy.offered_rps == pytest.approx(50, rel=0.01)
    assert numbers.accepted_over_limit == round(noisy.accepted_rps / 10, 3)
    quiet = numbers.tenants.quiet
    assert (quiet.requests, quiet.accepted, quiet.limited, quiet.errors) == (80, 78, 1, 1)
    assert numbers.quiet_success_pct == quiet.success_pct == 97.5
    assert numbers.quiet_p99_ms == quiet.p99_ms
    assert numbers.limit_rps == 10
    assert numbers.headers_of_429 == HEADERS
    assert numbers.headers() == HeaderCounts(responses=401, retry_after=401, problem_json=399)
    field = "limit_rps"
    with pytest.raises(FrozenInstanceError):
        setattr(numbers, field, 0)


def test_rates_before_and_after_a_stop_fault(tmp_path: Path):
    numbers = derive(context(tmp_path, stop_at_s=10.0))
    assert numbers.fault_at_s == 10.0
    assert numbers.noisy_accepted_rps_before == pytest.approx(10, rel=0.02)
    assert numbers.noisy_accepted_rps_after == pytest.approx(50, rel=0.02)
    assert numbers.fails_open(tolerance=0.15, factor=3.0)
    assert not numbers.fails_open(tolerance=0.15, factor=6.0)


def test_without_a_stop_fault_there_is_no_before_and_after(tmp_path: Path):
    numbers = derive(context(tmp_path, stop_at_s=None))
    assert (numbers.fault_at_s, numbers.noisy_accepted_rps_before) == (None, None)
    assert numbers.noisy_accepted_rps_after is None
    assert math.isnan(numbers.after_times_limit) and not numbers.fails_open(0.15, 3.0)


def test_a_run_with_nothing_collected_reads_as_zero_and_holds_nothing(tmp_path: Path):
    numbers = derive(DeriveContext(REDIS, summarize("redis", []), [], tmp_path))
    assert numbers.tenants.noisy == numbers.tenants.quiet == TenantNumbers()
    assert numbers.headers_of_429 == {} and numbers.headers() == HeaderCounts(0, 0, 0)
    assert not numbers.holds_limit(0.15) and not numbers.quiet_unharmed(99.0, 50)


def test_a_headers_file_with_junk_reads_what_is_a_count(tmp_path: Path):
    (tmp_path / HEADERS_FILE).write_text(json.dumps({"noisy": {"429": 3, "retry_after": "x"},
                                                     "quiet": [1]}))  # fmt: skip
    numbers = derive(DeriveContext(REDIS, summarize("redis", []), [], tmp_path))
    assert numbers.headers_of_429 == {"noisy": {"429": 3, "retry_after": 0}, "quiet": {}}
    (tmp_path / HEADERS_FILE).write_text("not json")
    assert derive(DeriveContext(REDIS, summarize("redis", []), [], tmp_path)).headers_of_429 == {}


def test_the_limit_holds_within_a_tolerance_and_the_quiet_tenant_needs_enough_requests():
    def numbers(accepted_rps: float, quiet: TenantNumbers) -> RateLimitNumbers:
        noisy = TenantNumbers(requests=1800, accepted_rps=accepted_rps)
        return RateLimitNumbers(10, 150.0, accepted_rps, accepted_rps / 10, quiet.success_pct,
                                1.0, Tenants(noisy, quiet), {})  # fmt: skip

    quiet = TenantNumbers(requests=90, accepted=90, success_pct=100.0)
    assert numbers(11.4, quiet).holds_limit(0.15) and not numbers(11.6, quiet).holds_limit(0.15)
    assert numbers(10, quiet).quiet_unharmed(99.0, 50)
    assert not numbers(10, TenantNumbers(requests=49, success_pct=100.0)).quiet_unharmed(99.0, 50)
    assert numbers(28.0, quiet).times_limit == pytest.approx(2.8)
