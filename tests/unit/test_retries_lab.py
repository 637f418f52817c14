"""The retries lab's measurements and checks on hand-made data (no processes)."""

from __future__ import annotations

import csv
from pathlib import Path

from labs.engine.metrics import Request, VariantResult, summarize
from labs.engine.spec import DeriveContext
from labs.retries import lab

ORIGIN = 1_000_000.0


def result_with(arrivals: list[int], crash_t: float = 2.0, start: float = 0.0) -> VariantResult:
    result = summarize("x", [Request(ORIGIN, "/work", 200, 1.0)])
    result.events = [
        {"t_s": crash_t - 1.0, "what": "fault", "settings": {"latency_ms": 1600}},
        {"t_s": crash_t, "what": "fault", "settings": {"outage_s": 1.0, "latency_ms": 100}},
        {"t_s": crash_t + 1.0, "what": "fault", "settings": {"max_concurrent": 40}},
    ]
    result.services = {
        "api": [
            {"arrivals": {"bucket_s": 0.1, "start_epoch_s": ORIGIN + start, "counts": arrivals}}
        ],
        "gateway": [{"downstreams": {"api": {"attempts": sum(arrivals), "retries": 3}}}],
    }
    return result


def write_logical(path: Path, rows: list[tuple[float, float, int, int, int]]) -> None:
    with (path / "logical.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_s", "end_s", "client_attempts", "api_attempts", "status"])
        writer.writerows((ORIGIN + a, ORIGIN + b, c, n, s) for a, b, c, n, s in rows)


def test_outage_window_comes_from_the_step_that_set_outage_s():
    window = lab.outage_window(result_with([1], crash_t=3.25))
    assert window == lab.Window(3.25, 4.25)
    assert lab.outage_window(summarize("x", [])) is None


def test_api_arrivals_are_placed_relative_to_the_first_request():
    xs, counts = lab.api_arrivals(result_with([5, 6, 7], start=-0.05))
    assert xs == [-0.05, 0.05, 0.15] and counts == [5, 6, 7]


def test_derive_computes_amplification_waves_and_failed_request_cost(tmp_path: Path):
    # 10 s of buckets: 2 per bucket, 10 per bucket in the outage (2.0-3.0 s), a 40 wave at 3.5 s.
    counts = [2] * 100
    for i in range(20, 30):
        counts[i] = 10
    counts[35] = 40
    result = result_with(counts)
    requests = [Request(ORIGIN + t / 10, "/work", 200, 50.0) for t in range(0, 100, 2)]
    requests += [Request(ORIGIN + 2.1, "/work", 503, 300.0)] * 4
    requests += [Request(ORIGIN + 2.5, "/work (client retry)", 503, 10.0)] * 2
    write_logical(
        tmp_path,
        [
            (2.1, 2.6, 3, 12, 503),
            (2.2, 2.7, 3, 12, 503),
            (0.1, 0.2, 1, 1, 200),
            (5, 5.1, 1, 2, 200),
        ],
    )
    extra = lab.derive(DeriveContext(lab.NO_RETRY, result, requests, tmp_path))
    assert extra["client_requests"] == 54 and extra["client_retries"] == 2
    assert extra["api_attempts"] == sum(counts)
    assert extra["outage_api_attempts"] == 100
    assert extra["max_bucket_after_outage"] == 40
    assert extra["attempts_per_failed_request"] == 12.0
    assert extra["failed_requests_in_outage"] == 2
    assert extra["failed_after_outage"] == 0
    assert extra["success_rate"] == round(50 / 54, 3)
    assert extra["gateway_retries"] == 3


def test_derive_without_an_outage_still_has_every_key(tmp_path: Path):
    result = summarize("x", [Request(ORIGIN, "/work", 200, 1.0)])
    extra = lab.derive(DeriveContext(lab.NO_RETRY, result, [], tmp_path))
    for key in (*lab.OUTAGE_KEYS, "amplification", "success_rate"):
        assert key in extra


def test_recovery_time_is_when_every_later_second_is_99_percent_good():
    reqs = [Request(ORIGIN + t / 10, "/work", 503 if t < 25 else 200, 0.0) for t in range(60)]
    assert lab.recovery_time(reqs, ORIGIN, after_s=1.0) == 2.0
    good = [Request(ORIGIN + t / 10, "/work", 200, 0.0) for t in range(60)]
    assert lab.recovery_time(good, ORIGIN, after_s=1.0) == 0.0
    assert lab.recovery_time(reqs[:20], ORIGIN, after_s=1.0) == -1.0


def _results(**extras: dict) -> dict[str, VariantResult]:
    results = {}
    for name, extra in extras.items():
        r = summarize(name, [])
        r.extra = extra
        results[name.replace("_", "-")] = r
    return results


def test_checks_pass_on_large_effects_and_explain_in_numbers():
    results = _results(
        immediate={"outage_amplification": 15.0},
        full_jitter={
            "outage_amplification": 3.3,
            "max_bucket_after_outage": 20,
            "success_rate": 1.0,
            "failed_after_outage": 0,
        },
        exponential={
            "max_bucket_after_outage": 80,
            "success_rate": 0.95,
            "failed_after_outage": 90,
        },
        layers={"attempts_per_failed_request": 12.0},
        budget={"outage_amplification": 1.0},
    )
    for result in results.values():
        result.extra["load_before_faults_s"] = 2.5
    verdicts = {c.name: c.run(results) for c in lab.CHECKS}
    assert all(v.passed for v in verdicts.values()), verdicts
    detail = verdicts["immediate_amplifies_3x_full_jitter"].detail
    assert "immediate 15 vs full-jitter 3.3 (4.55x)" in detail and ">= 3 x" in detail


def test_checks_fail_when_the_fix_is_gone():
    # full jitter behaving like exponential, one layer of retries, no budget
    same = {"outage_amplification": 2.0, "max_bucket_after_outage": 80, "failed_after_outage": 90}
    results = _results(
        immediate={"outage_amplification": 15.0},
        full_jitter={**same, "success_rate": 0.96},  # two runs of the same policy differ a bit
        exponential={**same, "success_rate": 0.94},
        layers={"attempts_per_failed_request": 3.0},
        budget={"outage_amplification": 3.3},
    )
    for result in results.values():
        result.extra["load_before_faults_s"] = 2.5
    results["budget"].extra["load_before_faults_s"] = -2.9  # Locust started late
    verdicts = {c.name: c.run(results).passed for c in lab.CHECKS}
    assert verdicts == {
        "load_ran_before_the_incident": False,
        "immediate_amplifies_3x_full_jitter": True,
        "exponential_waves_2x_full_jitter": False,
        "full_jitter_succeeds_where_exponential_fails": False,
        "layers_multiply_attempts": False,
        "budget_caps_amplification": False,
    }


def test_plot_series_put_user_requests_next_to_api_attempts():
    assert lab.per_bucket([0.0, 0.05, 0.25, -0.1]) == [2, 0, 1]
    assert lab.per_bucket([]) == []
    result = result_with([3, 4])
    result.extra["client_requests_100ms"] = [1, 2, 0]
    series = lab.arrivals_series(result)
    assert series["api attempts"] == ([0.0, 0.1], [3, 4])
    assert series["user requests"] == ([0.0, 0.1, 0.2], [1, 2, 0])
