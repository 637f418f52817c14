import socket

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.errors import LabError
from labs.engine.load.driver import LoadFiles, locust_argv, read_progress
from labs.engine.model.catalog import all_labs, get_lab
from labs.engine.model.checks import nginx_errors_at_least, status_absent, status_at_least
from labs.engine.model.spec import LoadSpec
from labs.engine.topology.ports import ensure_port_free, free_ports, is_listening
from loadtests.pacing import BurstClock, swept_offset


def result(name="v", requests=640, status=None, nginx_errors=None) -> VariantResult:
    return VariantResult(
        variant=name, duration_s=20, requests=requests, failures=0,
        status=status or {"200": requests}, p50_ms=1, p95_ms=2, p99_ms=3, mean_ms=1,
        max_ms=4, rps=32, nginx_errors=nginx_errors or {},
    )  # fmt: skip


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        ensure_port_free(port)


def test_taken_port_is_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert is_listening(port)
        with pytest.raises(LabError, match=f"port {port} on 127.0.0.1 is already in use"):
            ensure_port_free(port)


def test_catalog_finds_the_keepalive_lab_and_rejects_unknown_names():
    assert "keepalive-502" in [lab.name for lab in all_labs()]
    lab = get_lab("keepalive-502")
    assert [v.name for v in lab.variants][:3] == ["broken", "fixed", "masked"]
    with pytest.raises(LabError, match="unknown lab 'nope'"):
        get_lab("nope")
    with pytest.raises(LabError, match="unknown variant 'nope'"):
        lab.variant("nope")


def test_status_at_least_reads_like_a_grader():
    check = status_at_least("broken", 502, count=10, share=0.01)
    passed, detail = check.evaluate({"broken": result("broken", status={"200": 603, "502": 37})})
    assert passed
    assert detail == "broken: 37 of 640 were 502 (5.8 %), expected >= 10 and >= 1 %"
    passed, _ = check.evaluate({"broken": result("broken", status={"200": 631, "502": 9})})
    assert not passed
    # enough in number but under the share
    big = result("broken", requests=5000, status={"200": 4960, "502": 40})
    assert not check.evaluate({"broken": big})[0]


def test_status_absent_fails_on_any_502_and_on_too_few_requests():
    check = status_absent("fixed", 502, min_requests=200)
    assert check.evaluate({"fixed": result("fixed")})[0]
    passed, detail = check.evaluate({"fixed": result("fixed", status={"200": 637, "502": 3})})
    assert not passed and "3 of 640 were 502" in detail
    assert not check.evaluate({"fixed": result("fixed", requests=50)})[0]


def test_nginx_errors_at_least_sums_kinds():
    check = nginx_errors_at_least("masked", ("a", "b"), 1, "resets")
    assert check.name == "masked_error_log_shows_resets"
    assert check.evaluate({"masked": result(nginx_errors={"a": 2, "b": 1})}) == (
        True,
        "masked: nginx error log has 3 (a 2, b 1), expected >= 1",
    )
    assert not check.evaluate({"masked": result(nginx_errors={"other": 5})})[0]


def test_locust_argv_is_headless_bounded_and_loopback(tmp_path):
    load = LoadSpec("synchronized_bursts.py", users=32, spawn_rate=32, duration_s=12)
    argv = locust_argv(load, "http://127.0.0.1:9000", LoadFiles(tmp_path))
    assert "--headless" in argv
    assert argv[argv.index("-t") + 1] == "12s"
    assert argv[argv.index("-u") + 1] == "32"
    assert argv[argv.index("--host") + 1] == "http://127.0.0.1:9000"


def test_missing_locustfile_is_a_lab_error(tmp_path):
    with pytest.raises(LabError, match="locustfile not found"):
        locust_argv(LoadSpec("nope.py", 1, 1, 1), "http://127.0.0.1:1", LoadFiles(tmp_path))


def test_progress_is_read_from_locust_stats_csv(tmp_path):
    files = LoadFiles(tmp_path)
    assert read_progress(files) is None
    files.stats_csv.write_text(
        "Type,Name,Request Count,Failure Count\nPOST,/work,120,7\n,Aggregated,120,7\n"
    )
    progress = read_progress(files)
    assert (progress.requests, progress.failures) == (120, 7)


def test_swept_offsets_cover_the_range_evenly_and_deterministically():
    offsets = [swept_offset(k, -0.016, -0.004) for k in range(200)]
    assert all(-0.016 <= o <= -0.004 for o in offsets)
    # golden-ratio sequence: every quarter of the range is visited about equally
    quarters = [min(3, int((o + 0.016) / 0.003)) for o in offsets]
    assert all(40 <= quarters.count(q) <= 60 for q in range(4))
    assert swept_offset(37, -0.016, -0.004) == offsets[37]
    with pytest.raises(ValueError):
        swept_offset(1, 0.01, 0.0)


def test_burst_clock_schedules_the_next_burst_after_the_median_response():
    clock = BurstClock(first=100.0, gap_s=1.0, offset_low_s=-0.016, offset_high_s=-0.004)
    assert clock.fire_at == 100.0
    assert [clock.join() for _ in range(3)] == [0, 0, 0]
    assert clock.done(now=100.010) is False
    assert clock.done(now=100.020) is False
    assert clock.fire_at == 100.0, "not rescheduled while responses are outstanding"
    assert clock.done(now=100.030) is True
    assert clock.index == 1
    assert clock.fire_at == pytest.approx(101.020 + swept_offset(1, -0.016, -0.004))
    assert clock.outstanding == 0


def test_burst_clock_rejects_a_non_positive_gap():
    with pytest.raises(ValueError):
        BurstClock(first=0, gap_s=0.001, offset_low_s=-0.002, offset_high_s=0)
