import math
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import (
    Request,
    VariantResult,
    percentile,
    read_requests,
    status_counts,
    summarize,
    time_series,
)


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) == 0.0
    assert percentile([3, 1, 2], 50) == 2


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def req(t: float, status: int = 200, ms: float = 10.0) -> Request:
    return Request(start_s=1000.0 + t, name="POST /work", status=status, response_ms=ms)


def test_time_series_buckets_by_second_and_keeps_empty_buckets():
    requests = [req(0.1), req(0.9, 502), req(1.5), req(3.2, 502, 40.0)]
    series = time_series(requests)
    assert [b.t_s for b in series] == [0, 1, 2, 3]
    assert [b.requests for b in series] == [2, 1, 0, 1]
    assert series[0].status == {"200": 1, "502": 1}
    assert series[2].status == {}
    assert series[3].p99_ms == 40.0


def test_time_series_with_100ms_buckets():
    requests = [req(0.0), req(0.05), req(0.15), req(0.31)]
    assert [b.requests for b in time_series(requests, bucket_s=0.1)] == [2, 1, 0, 1]


def test_status_counts_sorted_numerically_with_connection_errors_as_zero():
    counts = status_counts([req(0, 502), req(0, 0), req(0, 200), req(0, 200)])
    assert list(counts) == ["0", "200", "502"]
    assert counts == {"0": 1, "200": 2, "502": 1}


def test_summarize_counts_failures_latency_and_rate():
    requests = [req(i * 0.1, 502 if i % 4 == 0 else 200, ms=float(i)) for i in range(40)]
    result = summarize("broken", requests)
    assert result.requests == 40
    assert result.count(502) == 10
    assert result.share(502) == 0.25
    assert result.failures == 10
    assert result.p50_ms == 19.0
    assert result.max_ms == 39.0
    assert 9.0 < result.rps < 11.0
    assert result.metric("status.502") == 10
    assert result.metric("requests") == 40


def test_summarize_empty_run():
    result = summarize("x", [])
    assert result.requests == 0 and result.share(502) == 0.0 and result.series == []


def test_read_requests_round_trip(tmp_path: Path):
    path = tmp_path / "requests.csv"
    path.write_text(
        "start_s,name,status,response_ms\n1.5,POST /work,502,3.25\n2.0,POST /work,0,100\n"
    )
    assert read_requests(path) == [
        Request(1.5, "POST /work", 502, 3.25),
        Request(2.0, "POST /work", 0, 100.0),
    ]


def test_a_labs_number_is_nan_unless_it_is_a_number():
    result = VariantResult("v", 1.0, 0, 0, {}, 0, 0, 0, 0, 0, 0)
    result = replace(result, extra={"lost": 0, "pct": 1.5, "flag": True, "text": "3", "none": None})
    assert (result.number("lost"), result.number("pct")) == (0.0, 1.5)
    for key in ("flag", "text", "none", "missing"):
        assert math.isnan(result.number(key)), key  # a check on it fails, never passes


def test_typed_derived_numbers_travel_with_their_json_view():
    from dataclasses import dataclass, replace

    import pytest

    from labs.engine.analysis.metrics import summarize

    @dataclass(frozen=True)
    class Numbers:
        duplicates: int

    @dataclass(frozen=True)
    class Other:
        x: int

    result = summarize("v", [])
    result = replace(result, derived=Numbers(3), extra={"duplicates": 3})
    assert result.numbers(Numbers).duplicates == 3
    assert "derived" not in result.to_dict() and result.to_dict()["extra"] == {"duplicates": 3}
    with pytest.raises(TypeError, match="v has no Other"):
        result.numbers(Other)
