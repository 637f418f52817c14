"""The streaming lab (labs/streaming/lab.py): its checks judged on synthetic numbers
(fast), and the lab end to end: real nginx, the stream service, Locust (pytest -m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from labs.streaming.lab import LAB
from labs.streaming.measure import StreamNumbers
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "buffered_event_delay_10x_unbuffered",
    "unbuffered_events_arrive_live",
    "idle_timeout_cuts_every_subscriber",
    "heartbeat_cuts_no_stream",
    "idle_timeout_resumes_without_losing_an_event",
    "no_resume_loses_events",
    "websocket_no_upgrade_fails_every_handshake",
    "websocket_handshakes_all_succeed",
}
LIVE = StreamNumbers(
    subscribers=20, connections=100, handshakes_ok=100, handshakes_failed=0, events=1500,
    delay_p50_ms=0.4, delay_p99_ms=3.5, delay_max_ms=25.0, cuts=0, fewest_cuts=0, resumed=80,
    lost=0, duplicates=0, peak_reconnects_per_s=0, server_events_sent=1500, server_replayed=0,
    server_heartbeats=0, server_resumed=80, server_ws_refused=0, delay_p99=((), ()),
    reconnects=((), ()),
)  # fmt: skip
"""unbuffered, as measured here (results of 2026-12-06)."""
QUIET = replace(LIVE, connections=20, events=100, resumed=0, server_events_sent=100)


def measured(**changes: StreamNumbers) -> dict[str, VariantResult]:
    cut = replace(QUIET, connections=60, cuts=60, fewest_cuts=3, peak_reconnects_per_s=20)
    numbers = {
        "buffered": replace(LIVE, delay_p50_ms=1402.6, delay_p99_ms=2808.9),
        "unbuffered": LIVE,
        "idle-timeout": replace(cut, events=80, resumed=40),
        "no-resume": replace(cut, events=40, lost=40),
        "heartbeat": QUIET,
        "websocket-no-upgrade": replace(
            LIVE, connections=571, handshakes_ok=0, handshakes_failed=571, events=0
        ),
        "websocket": replace(LIVE, resumed=0),
        **changes,
    }
    return {name: empty_run(name, n) for name, n in numbers.items()}


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed and c.fails_without_fix is True for c in checks.values()), checks
    assert checks["buffered_event_delay_10x_unbuffered"].detail == (
        "p99 event delay, ms: buffered 2808.9 vs unbuffered 3.5 (802.54x), expected buffered "
        ">= 10 x unbuffered = 35"
    )
    assert checks["idle_timeout_resumes_without_losing_an_event"].detail == (
        "idle-timeout: events lost 0, duplicates 0, reconnects with Last-Event-ID 40; "
        "expected 0, 0, >= 20"
    )
    assert checks["no_resume_loses_events"].value == 40


def test_a_loss_a_cut_or_a_refused_handshake_fails_its_check():
    bad = {
        "idle_timeout_resumes_without_losing_an_event": {
            "idle-timeout": replace(QUIET, cuts=60, fewest_cuts=3, resumed=40, lost=1)
        },
        "heartbeat_cuts_no_stream": {"heartbeat": replace(QUIET, cuts=1)},
        "websocket_handshakes_all_succeed": {"websocket": replace(LIVE, handshakes_failed=1)},
        "unbuffered_events_arrive_live": {"unbuffered": replace(LIVE, delay_p99_ms=101.0)},
    }
    for name, changes in bad.items():
        checks = {c.name: c for c in judge(LAB, measured(**changes))}
        assert not checks[name].passed, name


def test_a_run_without_numbers_is_not_passed():
    results = {**measured(), "heartbeat": empty_run("heartbeat", None)}
    checks = {c.name: c for c in judge(LAB, results)}
    heartbeat = checks["heartbeat_cuts_no_stream"]
    assert not heartbeat.passed and "has no StreamNumbers" in heartbeat.detail


@pytest.mark.lab
def test_streaming_check_every_proxy_failure_and_its_fix(lab_env, tmp_path: Path):
    document = passed_check("streaming", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS
    variants = document["variants"]
    assert set(variants) == {v.name for v in LAB.variants}
    for name, variant in variants.items():
        assert list(variant["extra"]) == list(asdict(LIVE)), name  # results.json's keys
        assert variant["extra"]["subscribers"] == 20, name
    idle = variants["idle-timeout"]["extra"]
    assert idle["server_replayed"] >= idle["subscribers"]  # the resumes were served a backlog
    assert variants["heartbeat"]["extra"]["server_heartbeats"] > 0
    refused = variants["websocket-no-upgrade"]["extra"]
    assert refused["server_ws_refused"] == refused["handshakes_failed"]  # the service said no

    run_dir = Path(document["results_dir"])
    for name in ("streams.csv", "stream_events.csv", "requests.csv", "nginx/access.log"):
        assert (run_dir / "idle-timeout" / name).is_file(), name
