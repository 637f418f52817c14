"""retries' measurements (labs/retries/measure.py) on hand-made data: the outage window,
the api's arrivals, the attempts failed requests cost, the last seconds, and `derive`'s
typed numbers whose JSON view is results.json's `extra` (fast, no processes)."""

from __future__ import annotations

import csv
import json
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.spec import DeriveContext
from labs.retries.measure import (
    AloneCount,
    FinalWindow,
    Logical,
    OutageNumbers,
    RetriesNumbers,
    api_arrivals,
    attempts_while_alone,
    derive,
    final_window,
    outage_window,
    per_bucket,
    recovery_time,
)
from labs.retries.scenario import NO_RETRY, STEADY_RATE

ORIGIN = 1_000_000.0


def result_with(arrivals: list[int], crash_t: float = 2.0, start: float = 0.0) -> VariantResult:
    result = summarize("x", [Request(ORIGIN, "/work", 200, 1.0)])
    result = replace(
        result,
        events=[
            {"t_s": crash_t - 1.0, "what": "fault", "settings": {"latency_ms": 1600}},
            {"t_s": crash_t, "what": "fault", "settings": {"outage_s": 1.0, "latency_ms": 100}},
            {"t_s": crash_t + 1.0, "what": "fault", "settings": {"max_concurrent": 40}},
        ],
    )
    result = replace(
        result,
        services={
            "api": [
                {"arrivals": {"bucket_s": 0.1, "start_epoch_s": ORIGIN + start, "counts": arrivals}}
            ],
            "gateway": [{"downstreams": {"api": {"attempts": sum(arrivals), "retries": 3}}}],
        },
    )
    return result


def write_logical(path: Path, rows: list[tuple[float, float, int, int, int]]) -> None:
    with (path / "logical.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_s", "end_s", "client_attempts", "api_attempts", "status"])
        writer.writerows((ORIGIN + a, ORIGIN + b, c, n, s) for a, b, c, n, s in rows)


def test_outage_window_comes_from_the_step_that_set_outage_s():
    window = outage_window(result_with([1], crash_t=3.25))
    assert window is not None and (window.start_s, window.end_s) == (3.25, 4.25)
    assert outage_window(summarize("x", [])) is None


def test_api_arrivals_are_placed_relative_to_the_first_request():
    xs, counts = api_arrivals(result_with([5, 6, 7], start=-0.05))
    assert xs == (-0.05, 0.05, 0.15) and counts == (5, 6, 7)
    assert api_arrivals(summarize("x", [])) == ((), ())


def _run(tmp_path: Path) -> DeriveContext:
    """10 s of buckets: 2 per bucket, 3 per bucket in the outage (2.0-3.0 s), a 40 wave at
    3.5 s; two user requests failed in the outage."""
    counts = [2] * 100
    for i in range(20, 30):
        counts[i] = 3
    counts[35] = 40
    requests = [Request(ORIGIN + t / 10, "/work", 200, 50.0) for t in range(0, 100, 2)]
    requests += [Request(ORIGIN + 2.1, "/work", 503, 300.0)] * 4
    requests += [Request(ORIGIN + 2.5, "/work (client retry)", 503, 10.0)] * 2
    write_logical(
        tmp_path,
        [
            # the gateway's X-Attempts claimed 20 each; the api saw 12 each
            (2.1, 2.6, 3, 20, 503),
            (2.2, 2.7, 3, 20, 503),
            (0.1, 0.2, 1, 1, 200),
            (5, 5.1, 1, 2, 200),
        ],
    )
    return DeriveContext(NO_RETRY, result_with(counts), requests, tmp_path)


EXTRA = {
    "client_requests": 54, "client_retries": 2, "api_attempts": 248, "amplification": 4.593,
    "success_rate": 0.926, "gateway_attempts": 248, "gateway_retries": 3, "budget_denied": 0,
    "gave_up_deadline": 0, "attempts_accounted": 0.173,
    "client_requests_100ms": [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 4,
                              1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1,
                              0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0,
                              0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0,
                              1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1],
    "attempts_per_failed_request": 12.0, "alone_at_api_s": 0.8, "alone_requests": 2,
    "failed_requests_in_outage": 2,
    "failed_after_outage": 0, "outage_api_attempts": 30, "outage_client_requests": 9,
    "outage_amplification": 3.333, "steady_bucket_mean": 2.0, "max_bucket_after_outage": 40,
    "recovery_s": 0.0, "load_before_faults_s": 1.0, "final_requests": 0,
    "final_success_rate": 0.0, "final_rate_share": 0.0, "outage_start_s": 2.0,
    "outage_end_s": 3.0, "p50_ms": 1.0, "p99_ms": 1.0,
}  # fmt: skip
"""What the lab's derive returned for `_run` before it was typed (its dict, as JSON)."""


def test_derive_is_typed_and_its_json_view_is_the_extra_results_json_has(tmp_path: Path):
    numbers = derive(_run(tmp_path))
    assert isinstance(numbers, RetriesNumbers)
    # Same keys in the same order, same values and types: results.json is unchanged.
    assert json.dumps(asdict(numbers)) == json.dumps(EXTRA)
    with pytest.raises(FrozenInstanceError):
        numbers.__setattr__("success_rate", 1.0)


def test_derive_computes_amplification_waves_and_failed_request_cost(tmp_path: Path):
    n = derive(_run(tmp_path))
    assert n.client_requests == 54 and n.client_retries == 2
    assert n.api_attempts == 248
    assert n.outage_api_attempts == 30
    assert n.max_bucket_after_outage == 40
    # counted by the api: buckets 2.0-2.8 s, where only the two failed requests were in flight
    assert (n.attempts_per_failed_request, n.alone_at_api_s, n.alone_requests) == (12.0, 0.8, 2)
    assert n.failed_requests_in_outage == 2
    assert n.failed_after_outage == 0
    assert n.success_rate == round(50 / 54, 3)
    assert n.gateway_retries == 3


def test_derive_without_an_outage_reads_zero_for_every_outage_number(tmp_path: Path):
    result = summarize("x", [Request(ORIGIN, "/work", 200, 1.0)])
    n = derive(DeriveContext(NO_RETRY, result, [], tmp_path))
    outage = OutageNumbers()
    assert all(getattr(n, key) == value for key, value in asdict(outage).items())
    assert (n.amplification, n.success_rate, n.load_before_faults_s) == (0.0, 0.0, 0.0)


def _user(start: float, end: float, status: int = 503) -> Logical:
    return Logical(start, end, 1, 1, status)


def test_attempts_of_failed_requests_are_counted_where_only_they_reached_the_api():
    xs = [round(i * 0.1, 1) for i in range(20)]
    counts = [9, 9, 0, 0, 0, 4, 6, 2, 5, 9, 9] + [0] * 9
    failed = [_user(0.52, 0.68), _user(0.61, 0.74)]  # buckets 5-6 and 6-7
    others = [_user(0.05, 0.15, 200), _user(0.85, 1.05, 200)]  # 0-1 and 8-10
    # buckets 5, 6, 7 had only the failed two in flight: 4 + 6 + 2 arrivals are theirs
    assert attempts_while_alone(failed, others, xs, counts) == AloneCount(6.0, 0.3, 2)
    # a request of someone else's in flight over the same buckets: nothing can be told apart
    assert attempts_while_alone(failed, [*others, _user(0.4, 0.95, 200)], xs, counts) == (
        AloneCount(-1.0, 0.0, 0)
    )
    assert attempts_while_alone([], others, xs, counts) == AloneCount(0.0, 0.0, 0)
    # the buckets are placed by the api's grid, here 50 ms before the first request
    shifted = [round(x - 0.05, 2) for x in xs]
    assert attempts_while_alone(failed, others, shifted, counts).seconds == 0.3


def test_a_failed_request_shared_with_a_served_one_is_dropped_with_its_round():
    """Rounds: 3 failed requests alone (buckets 2-4), a think gap, then a round that ends
    beside a served request. Counting the second round in part (bucket 7 alone, 8-9 shared)
    would make its requests look cheaper; it is left out whole."""
    xs = [round(i * 0.1, 1) for i in range(12)]
    counts = [0, 0, 12, 12, 12, 0, 0, 8, 8, 8, 9, 0]
    first = [_user(0.21, 0.48)] * 3  # buckets 2-4: 36 arrivals, 12 each
    second = [_user(0.71, 0.98)] * 2  # buckets 7-9
    served = [_user(0.82, 1.05, 200)]  # buckets 8-10
    assert attempts_while_alone([*first, *second], served, xs, counts) == AloneCount(12.0, 0.3, 3)
    # a failed request bridging the gap joins the rounds: both go, nothing is left alone
    bridge = _user(0.45, 0.75)
    assert attempts_while_alone([*first, *second, bridge], served, xs, counts).per_request == -1.0


def test_final_window_counts_the_users_served_in_the_last_seconds():
    assert round(STEADY_RATE, 1) == 136.4  # 150 users, one request per 1.1 s
    before = [_user(1.2 + i / 136, 1.3 + i / 136, 200) for i in range(5 * 136)]
    end = [_user(14.5 + i / 68, 14.6 + i / 68, 200) for i in range(3 * 68)]  # half the rate
    end[3] = _user(end[3].start_s, end[3].end_s, 503)
    late = [_user(17.6, 17.7, 503)]  # after the window: may be cut off by Locust's stop
    assert final_window(before + end + late, 18.0) == FinalWindow(
        requests=204,
        success_rate=round(203 / 204, 3),
        rate_share=round(68 / STEADY_RATE, 3),
    )
    assert final_window(before, 18.0).rate_share == 0.0


def test_recovery_time_is_when_every_later_second_is_99_percent_good():
    reqs = [Request(ORIGIN + t / 10, "/work", 503 if t < 25 else 200, 0.0) for t in range(60)]
    assert recovery_time(reqs, ORIGIN, after_s=1.0) == 2.0
    good = [Request(ORIGIN + t / 10, "/work", 200, 0.0) for t in range(60)]
    assert recovery_time(good, ORIGIN, after_s=1.0) == 0.0
    assert recovery_time(reqs[:20], ORIGIN, after_s=1.0) == -1.0


def test_per_bucket_counts_the_user_requests_per_100_ms():
    assert per_bucket([0.0, 0.05, 0.25, -0.1]) == (2, 0, 1)
    assert per_bucket([]) == ()


def test_a_fix_holds_only_when_the_users_are_served_at_the_end(tmp_path: Path):
    served = replace(
        derive(_run(tmp_path)), failed_after_outage=0, success_rate=1.0,
        final_success_rate=1.0, final_rate_share=0.9,
    )  # fmt: skip
    assert served.fix_holds(10, 0.99, 0.5)
    # waits that outlast the run: the stuck users are never recorded as failures, but
    # they make no requests at the end
    assert not replace(served, final_rate_share=0.3).fix_holds(10, 0.99, 0.5)
    assert not replace(served, final_success_rate=0.9).fix_holds(10, 0.99, 0.5)
    assert not replace(served, failed_after_outage=40).fix_holds(10, 0.99, 0.5)


def test_numbers_are_read_typed_from_a_result(tmp_path: Path):
    result = summarize("no-retry", [])
    with pytest.raises(TypeError, match="no RetriesNumbers"):
        result.numbers(RetriesNumbers)
    result = replace(result, derived=derive(_run(tmp_path)))
    assert result.numbers(RetriesNumbers).max_bucket_after_outage == 40
