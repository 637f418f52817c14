"""streaming's exercise (labs/streaming/exercise.py): its solution, bad edits and guards
(fast), what it measures and when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labs.engine.analysis.metrics import VariantResult, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.streaming.exercise import EXERCISE, holds, symptom
from labs.streaming.measure import StreamNumbers
from labs.streaming.scenario import HEARTBEAT, IDLE_TIMEOUT, UNBUFFERED, nginx
from tests.conftest import grade_with, run_lab_cli

FIX = {"heartbeat_ms = 0": "heartbeat_ms = 2000"}
STEADY = StreamNumbers(
    subscribers=20, connections=20, handshakes_ok=20, handshakes_failed=0, events=100,
    delay_p50_ms=0.2, delay_p99_ms=1.1, delay_max_ms=1.3, cuts=0, fewest_cuts=0, resumed=0,
    lost=0, duplicates=0, peak_reconnects_per_s=0, server_events_sent=100, server_replayed=0,
    server_heartbeats=280, server_resumed=0, server_ws_refused=0, delay_p99=((), ()),
    reconnects=((), ()),
)  # fmt: skip
"""heartbeat, as measured here (results of 2026-12-06)."""


def result_with(n: StreamNumbers) -> VariantResult:
    return summarize("after", []).with_derived(n)


def test_solution_is_a_heartbeat():
    diff = exercise.solution_diff(get_lab("streaming"))
    assert "-heartbeat_ms = 0" in diff and "+heartbeat_ms = 2000" in diff


def test_a_fix_holds_only_with_no_cut_no_loss_and_live_events():
    assert holds(result_with(STEADY))
    for wrong in ({"cuts": 1}, {"lost": 1}, {"events": 39}, {"delay_p99_ms": 100.5}):
        assert not holds(result_with(replace(STEADY, **wrong))), wrong
    assert not holds(summarize("after", []))
    shown = symptom(result_with(replace(STEADY, cuts=60, peak_reconnects_per_s=20, lost=3)))
    assert shown == (
        "60 streams cut (20 reconnects in one second at the peak), 3 events lost, 100 events "
        "received, p99 delay 1.1 ms"
    )


def test_a_longer_read_timeout_is_not_a_fix():
    (timeout_lengthened,) = EXERCISE.guards
    assert timeout_lengthened(replace(IDLE_TIMEOUT, nginx=nginx(UNBUFFERED, "60s")))
    for variant in (IDLE_TIMEOUT, HEARTBEAT, replace(IDLE_TIMEOUT, nginx=nginx((), "3s"))):
        assert timeout_lengthened(variant) is None


SETTINGS = (
    "[nginx]\nproxy_buffering = false\nproxy_read_timeout_s = {timeout}\n"
    "[service]\nheartbeat_ms = {heartbeat}\nretry_ms = 3000\n[subscribers]\nresume = {resume}\n"
)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"timeout": 0, "heartbeat": 2000, "resume": "true"}, "from 1 to 3600"),
        ({"timeout": 5, "heartbeat": -1, "resume": "true"}, "heartbeat_ms must be a whole"),
        ({"timeout": 5, "heartbeat": 2.5, "resume": "true"}, "heartbeat_ms must be a whole"),
        ({"timeout": 5, "heartbeat": 2000, "resume": '"yes"'}, "true or false"),
    ],
)
def test_bad_edits_are_one_line_errors(workdir, values, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(SETTINGS.format(**values))
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("streaming"), path)


def test_a_missing_section_is_a_one_line_error(workdir):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[nginx]\nproxy_buffering = false\nproxy_read_timeout_s = 5\n")
    with pytest.raises(LabError, match="service"):
        exercise.load_edit(get_lab("streaming"), path)


def test_a_longer_timeout_is_refused_by_grade(exercise_env, tmp_path):
    longer = {"proxy_read_timeout_s = 5": "proxy_read_timeout_s = 60"}
    result = grade_with(exercise_env, tmp_path, "streaming", longer)
    assert result.returncode == 1
    assert "not a fix" in result.stdout and "an idle timeout you do not control" in result.stdout


@pytest.mark.lab
def test_grade_passes_a_heartbeat_and_fails_buffering_with_it(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, "streaming", FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout and "after: 0 streams cut" in fixed.stdout

    assert run_lab_cli("exercise", "streaming", "--reset", env=exercise_env).returncode == 0
    buffered = grade_with(
        exercise_env,
        tmp_path,
        "streaming",
        {**FIX, "proxy_buffering = false": "proxy_buffering = true"},
    )  # no cut, but nginx holds every event in its buffer
    assert buffered.returncode == 1, buffered.stdout + buffered.stderr
    assert "after your change: still" in buffered.stdout
