"""The retries lab's measurements and checks on hand-made data (no processes)."""

from __future__ import annotations

import csv
from pathlib import Path

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.spec import DeriveContext
from labs.engine.model.verdicts import judge
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
    # 10 s of buckets: 2 per bucket, 3 per bucket in the outage (2.0-3.0 s), a 40 wave at 3.5 s.
    counts = [2] * 100
    for i in range(20, 30):
        counts[i] = 3
    counts[35] = 40
    result = result_with(counts)
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
    extra = lab.derive(DeriveContext(lab.NO_RETRY, result, requests, tmp_path))
    assert extra["client_requests"] == 54 and extra["client_retries"] == 2
    assert extra["api_attempts"] == sum(counts)
    assert extra["outage_api_attempts"] == 30
    assert extra["max_bucket_after_outage"] == 40
    # counted by the api: buckets 2.0-2.8 s, where only the two failed requests were in flight
    assert (extra["attempts_per_failed_request"], extra["alone_at_api_s"]) == (12.0, 0.8)
    assert extra["failed_requests_in_outage"] == 2
    assert extra["failed_after_outage"] == 0
    assert extra["success_rate"] == round(50 / 54, 3)
    assert extra["gateway_retries"] == 3


def _user(start: float, end: float, status: int = 503) -> lab.Logical:
    return lab.Logical(start, end, 1, 1, status)


def test_attempts_of_failed_requests_are_counted_where_only_they_reached_the_api():
    xs = [round(i * 0.1, 1) for i in range(20)]
    counts = [9, 9, 0, 0, 0, 4, 6, 2, 5, 9, 9] + [0] * 9
    failed = [_user(0.52, 0.68), _user(0.61, 0.89)]  # buckets 5-6 and 6-8
    others = [_user(0.05, 0.15, 200), _user(0.85, 1.05, 200)]  # 0-1 and 8-10
    # buckets 5, 6, 7 had only the failed two in flight: 4 + 6 + 2 arrivals are theirs
    assert lab.attempts_while_alone(failed, others, xs, counts) == (6.0, 0.3)
    # a request of someone else's in flight over the same buckets: nothing can be told apart
    assert lab.attempts_while_alone(failed, [*others, _user(0.4, 0.95, 200)], xs, counts) == (
        -1.0, 0.0
    )  # fmt: skip
    assert lab.attempts_while_alone([], others, xs, counts) == (0.0, 0.0)
    # the buckets are placed by the api's grid, here 50 ms before the first request
    shifted = [round(x - 0.05, 2) for x in xs]
    assert lab.attempts_while_alone(failed, others, shifted, counts)[1] == 0.3


def test_final_window_counts_the_users_served_in_the_last_seconds():
    assert round(lab.STEADY_RATE, 1) == 136.4  # 150 users, one request per 1.1 s
    before = [_user(1.2 + i / 136, 1.3 + i / 136, 200) for i in range(5 * 136)]
    end = [_user(14.5 + i / 68, 14.6 + i / 68, 200) for i in range(3 * 68)]  # half the rate
    end[3] = _user(end[3].start_s, end[3].end_s, 503)
    late = [_user(17.6, 17.7, 503)]  # after the window: may be cut off by Locust's stop
    numbers = lab.final_window(before + end + late, 18.0)
    assert numbers == {
        "final_requests": 204,
        "final_success_rate": round(203 / 204, 3),
        "final_rate_share": round(68 / lab.STEADY_RATE, 3),
    }
    assert lab.final_window(before, 18.0)["final_rate_share"] == 0.0


def _graded(**extra: float) -> VariantResult:
    result = summarize("x", [])
    result.extra = {
        "failed_after_outage": 0,
        "success_rate": 1.0,
        "final_success_rate": 1.0,
        "final_rate_share": 0.9,
        **extra,
    }
    return result


def test_a_fix_holds_only_when_the_users_are_served_at_the_end():
    assert lab.holds(_graded())
    # waits that outlast the run: the stuck users are never recorded as failures, but
    # they make no requests at the end
    assert not lab.holds(_graded(final_rate_share=0.3))
    assert not lab.holds(_graded(final_success_rate=0.9))
    assert not lab.holds(_graded(failed_after_outage=40))
    missing = _graded()
    del missing.extra["final_rate_share"]
    assert not lab.holds(missing)


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
        layers={"attempts_per_failed_request": 11.3, "alone_at_api_s": 4.4},
        budget={"outage_amplification": 1.0},
    )
    for result in results.values():
        result.extra["load_before_faults_s"] = 2.5
    verdicts = {c.name: c for c in judge(lab.LAB, results)}
    assert all(v.passed for v in verdicts.values()), verdicts
    # Each one also fails when its variants' numbers are replaced by their twins'.
    proofs = {name: v.proof for name, v in verdicts.items()}
    assert proofs == {
        **dict.fromkeys(proofs, "proven"),
        "load_ran_before_the_incident": "not_applicable",
    }
    detail = verdicts["immediate_amplifies_3x_full_jitter"].detail
    assert "immediate 15 vs full-jitter 3.3 (4.55x)" in detail and ">= 3 x" in detail
    detail = verdicts["layers_multiply_attempts"].detail
    assert "counted by the api in the 4.4 s" in detail
    assert "layers 11.3, expected 9.6 .. 12" in detail


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
    verdicts = {c.name: c.passed for c in judge(lab.LAB, results)}
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


def test_strategy_names_are_the_gateways():
    from services.gateway.retry.policy import STRATEGIES

    assert lab.STRATEGIES == STRATEGIES
