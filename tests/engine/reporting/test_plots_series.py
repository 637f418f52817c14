"""The arithmetic behind the plots, on fixed data: bucketing, rates, percentiles,
counters scraped from /metrics, nginx log series and fault windows."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest

from labs.engine.analysis import logseries
from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import (
    Request,
    VariantResult,
    bucket_index,
    summarize,
    time_series,
)
from labs.engine.load.scrape import parse_samples


def req(t: float, status: int = 200, ms: float = 10.0) -> Request:
    return Request(start_s=1000.0 + t, name="POST /work", status=status, response_ms=ms)


def test_bucket_index_is_exact_at_bucket_edges():
    # float division puts 0.3 s in bucket 2 of 0.1 s (0.3 // 0.1 == 2.0)
    assert bucket_index(0.3, 0.1) == 3
    assert bucket_index(1000.3 - 1000.0, 0.1) == 3
    assert bucket_index(0.2999, 0.1) == 2
    assert bucket_index(2.0, 1.0) == 2
    assert bucket_index(-0.5, 1.0) == -1


def test_time_series_percentiles_per_bucket():
    latencies = [float(ms) for ms in range(1, 101)]  # 1..100 ms in the first second
    requests = [req(i / 200, ms=ms) for i, ms in enumerate(latencies)] + [req(1.5, ms=7.0)]
    first, second = time_series(requests)
    assert (first.p50_ms, first.p95_ms, first.p99_ms) == (50.0, 95.0, 99.0)
    assert (second.p50_ms, second.p95_ms, second.p99_ms) == (7.0, 7.0, 7.0)


def test_time_series_with_an_origin_drops_earlier_requests():
    buckets = time_series([req(0.0), req(1.2), req(2.5)], origin=1001.0)
    assert [b.requests for b in buckets] == [1, 1]


def test_rate_by_class_is_per_second_whatever_the_bucket():
    requests = [req(0.01), req(0.05, 502), req(0.12), req(0.35, 0), req(1.05)]
    result = summarize("broken", requests)
    one_second = S.rate_by_class(result)
    assert list(one_second) == ["2xx", "5xx", "no response"]
    assert one_second["2xx"] == ([0.0, 1.0], [2.0, 1.0])
    assert one_second["5xx"][1] == [1.0, 0.0]
    assert one_second["no response"][1] == [1.0, 0.0]
    fine = S.rate_by_class(result, bucket_s=0.1)
    assert fine["2xx"][0][:4] == [0.0, 0.1, 0.2, 0.3]
    assert fine["2xx"][1][:4] == [10.0, 10.0, 0.0, 0.0]  # 1 request in 0.1 s = 10/s
    assert fine["no response"][1][3] == 10.0


def test_rate_by_class_always_has_2xx_and_5xx_so_a_fixed_variant_shows_zero():
    result = summarize("fixed", [req(0.1), req(1.1)])
    assert S.rate_by_class(result)["5xx"] == ([0.0, 1.0], [0.0, 0.0])


def test_rate_by_code_lists_error_codes_only():
    result = summarize("x", [req(0.1), req(0.2, 502), req(1.3, 503), req(1.4, 0)])
    rates = S.rate_by_code(result)
    assert rates == {
        "no response": ([0.0, 1.0], [0.0, 1.0]),
        "502": ([0.0, 1.0], [1.0, 0.0]),
        "503": ([0.0, 1.0], [0.0, 1.0]),
    }
    assert "200" in S.rate_by_code(result, errors_only=False)


def test_latency_of_an_empty_bucket_is_a_gap_not_zero():
    result = summarize("x", [req(0.1, ms=5.0), req(2.1, ms=9.0)])
    xs, ys = S.latency(result, (99,))["p99"]
    assert xs == [0.0, 1.0, 2.0]
    assert ys[0] == 5.0 and math.isnan(ys[1]) and ys[2] == 9.0


def test_raw_requests_stay_out_of_results_json_but_finer_buckets_work():
    result = summarize("x", [req(0.0), req(0.05), req(0.15)])
    assert "raw_requests" not in result.to_dict()
    assert [b.requests for b in result.buckets(0.1)] == [2, 1]
    assert result.buckets(1.0) is result.series


def scrape(t: float, replica: int, samples: dict[str, float]) -> dict[str, object]:
    return {"t_s": t, "service": "gateway", "replica": replica, "samples": samples}


def test_counter_rate_sums_replicas_and_survives_a_restart():
    key_ok = "upstream_attempts_total{outcome=ok,service=gateway,upstream=api}"
    key_err = "upstream_attempts_total{outcome=error,service=gateway,upstream=api}"
    result = summarize("x", [])
    result = replace(
        result,
        scrapes=[
            scrape(0.0, 0, {key_ok: 0, key_err: 0}),
            scrape(0.0, 1, {key_ok: 10}),
            scrape(1.0, 0, {key_ok: 30, key_err: 5}),
            scrape(1.0, 1, {key_ok: 20}),
            scrape(2.0, 0, {key_ok: 4, key_err: 5}),  # replica 0 restarted: counts from 0
            scrape(2.0, 1, {key_ok: 20}),
        ],
    )
    by_outcome = S.counter_rate(result, "gateway", "upstream_attempts_total", by="outcome")
    assert by_outcome == {"error": ([0.0, 1.0], [5.0, 0.0]), "ok": ([0.0, 1.0], [40.0, 4.0])}
    total = S.counter_rate(result, "gateway", "upstream_attempts_total", outcome="ok")
    assert total == {"upstream_attempts_total": ([0.0, 1.0], [40.0, 4.0])}


def test_gauge_is_one_line_per_replica():
    result = summarize("x", [])
    key = "breaker_state{breaker=api,service=gateway}"
    result = replace(
        result,
        scrapes=[scrape(0.0, 0, {key: 0}), scrape(1.0, 0, {key: 2}), scrape(1.0, 1, {key: 1})],
    )
    assert S.gauge(result, "gateway", "breaker_state") == {
        "gateway-1": ([0.0, 1.0], [0.0, 2.0]),
        "gateway-2": ([1.0], [1.0]),
    }


def test_parse_samples_keeps_counters_and_gauges_and_drops_histogram_buckets():
    text = (
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{service="api",status="502",route="/work",method="POST"} 3.0\n'
        "# HELP lat Latency.\n# TYPE lat histogram\n"
        'lat_bucket{le="0.1"} 2.0\nlat_bucket{le="+Inf"} 3.0\nlat_count 3.0\nlat_sum 0.4\n'
    )
    samples = parse_samples(text)
    assert samples == {
        "http_requests_total{method=POST,route=/work,service=api,status=502}": 3.0,
        "lat_count": 3.0,
        "lat_sum": 0.4,
    }
    name, labels = S.parse_key(next(iter(samples)))
    assert name == "http_requests_total" and labels["status"] == "502"


def fault(t: float, action: str = "settings", replica: int | None = None, **settings: object):
    event: dict[str, object] = {"t_s": t, "what": "fault", "action": action, "service": "api"}
    event["replica"] = replica
    if action == "settings":
        event["settings"] = settings
    return event


def test_fault_windows():
    result = summarize("x", [req(0.0), req(20.0)])
    result = replace(
        result,
        events=[
            fault(2.0, error_status=503, error_rate=0.5),
            fault(5.0, error_status=0, error_rate=0),  # clears: ends the first window
            fault(7.0, outage_s=3),  # ends on its own
            fault(12.0, "kill", replica=1),  # stays down to the end
            {"t_s": 1.0, "what": "note"},
        ],
    )
    # the run ends with the last response, 10 ms after the last request started
    assert S.fault_windows(result) == [(2.0, 5.0), (7.0, 10.0), (12.0, 20.01)]


def test_nginx_series_buckets_retries_and_error_kinds():
    origin = time.mktime(time.strptime("2026/11/21 23:56:30", "%Y/%m/%d %H:%M:%S")) + 0.2
    error_log = (
        "2026/11/21 23:56:31 [error] 1#1: *6 recv() failed (104: Connection reset by peer) x\n"
        "2026/11/21 23:56:31 [error] 1#1: *7 upstream prematurely closed connection x\n"
        "2026/11/21 23:56:33 [warn] 1#1: an upstream response is buffered\n"
        "2026/11/21 23:56:33 [error] 1#1: *9 something else\n"
        "not a log line\n"
    )
    access_log = "\n".join(
        [
            f'{{"t":{origin + 0.5:.3f},"status":200,"upstream_status":"200"}}',
            f'{{"t":{origin + 1.5:.3f},"status":200,"upstream_status":"502, 200"}}',
            f'{{"t":{origin + 1.6:.3f},"status":502,"upstream_status":"502, 502"}}',
            "garbage",
        ]
    )
    data = logseries.nginx_series(error_log, access_log, origin, buckets=4)
    assert data == {
        "t_s": [0.0, 1.0, 2.0, 3.0],
        "retried": [0.0, 2.0, 0.0, 0.0],
        "error.connection_reset": [0.0, 1.0, 0.0, 0.0],
        "error.other": [0.0, 0.0, 0.0, 1.0],
        "error.upstream_prematurely_closed": [0.0, 1.0, 0.0, 0.0],
    }


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), ("502", "5xx"), (429, "4xx"), (0, "no response")]
)
def test_status_class(status, expected):
    from labs.engine.analysis.metrics import status_class

    assert status_class(status) == expected


def step_events(steps) -> list[dict[str, object]]:
    """The events the runner records for a lab's FaultSteps (topology.faults.apply_faults)."""
    events = []
    for step in steps:
        event: dict[str, object] = {"t_s": step.at_s, "what": "fault", "action": step.action}
        if step.label:
            event["label"] = step.label
        if step.action == "settings":
            event["settings"] = dict(step.settings)
        events.append({**event, "service": step.service, "replica": step.replica})
    return events


def test_fault_phases_are_labelled_on_the_plots(tmp_path):
    from labs.engine.model.spec import Plot
    from labs.engine.reporting import plots
    from labs.load_balancing import scenario as load_balancing
    from labs.retries import scenario as retries

    def run(name: str, steps) -> VariantResult:
        result = summarize(name, [req(t / 10) for t in range(250)])
        result = replace(result, events=step_events(steps))
        return result

    requests = Plot("Responses per second", "responses/s", S.rate_by_class)
    cases = {
        "retries": (retries.FAULTS, ["stall", "outage", "cold"]),
        "load_balancing": (load_balancing.FAULTS, ["slow", "dead", "back"]),
    }
    for lab_name, (steps, labels) in cases.items():
        results = {"a": run("a", steps), "b": run("b", steps)}
        assert [label for _, label in S.fault_labels(results["a"])] == labels
        for layout in ("overlay", "side"):
            figure = plots.draw(requests, results, layout)
            texts = [t.get_text().strip() for ax in figure.axes for t in ax.texts]
            for label in labels:  # once per panel; once in all when overlaid
                assert texts.count(label) == (1 if layout == "overlay" else 2), (lab_name, texts)
        (tmp_path / f"{lab_name}.png").write_bytes(plots.render(requests, results, "side"))
    # without a label the phase is named from the event itself
    unlabelled = run("c", ())
    unlabelled = replace(
        unlabelled,
        events=[
            fault(2.0, latency_ms=900),
            fault(5.0, latency_ms=0),  # clears: no phase
            fault(6.0, "kill", replica=1),
            fault(8.0, "start", replica=1),
        ],
    )
    assert S.fault_labels(unlabelled) == [
        (2.0, "api latency_ms"),
        (6.0, "api[1] kill"),
        (8.0, "api[1] start"),
    ]
