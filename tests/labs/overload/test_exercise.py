"""overload's exercise (labs/overload/exercise.py): the settings file round trip, bad
edits, the guards that refuse a lower rate, a weaker trigger, no retries or another
timeout, when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.overload.exercise import EXERCISE, holds
from labs.overload.lab import LAB
from labs.overload.measure import LimitNumbers, OverloadNumbers, Phase
from labs.overload.scenario import BROKEN, LOW_LOAD, SHEDDING, SHORT_TRIGGER, THROTTLING
from tests.conftest import grade_with, run_lab_cli

BUDGET_FIX = {"retry_budget = false": "retry_budget = true"}
QUEUE_FIX = {"queue_limit = 0": "queue_limit = 40"}


def _edit(workdir: Path, replacements: dict[str, str]):
    text = EXERCISE.settings(BROKEN)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = workdir / "edit.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return exercise.load_edit(LAB, path)


def _refusals(variant) -> list[str]:
    return [reason for guard in EXERCISE.guards if (reason := guard(variant))]


def test_the_solution_turns_the_retry_budget_on():
    diff = exercise.solution_diff(LAB)
    assert "+retry_budget = true" in diff and "-retry_budget = false" in diff


def test_the_unedited_file_is_the_broken_variant(workdir):
    unedited = _edit(workdir, {})
    assert (unedited.services, unedited.load, unedited.faults) == (
        BROKEN.services, BROKEN.load, BROKEN.faults)  # fmt: skip


def test_edits_become_the_client_env_and_the_api_command_line(workdir):
    edited = _edit(workdir, {**BUDGET_FIX, **QUEUE_FIX, 'queue = "fifo"': 'queue = "lifo"',
                             "max_queue_ms = 0": "max_queue_ms = 300",
                             "throttle = false": "throttle = true"})  # fmt: skip
    assert edited.load.env["LAB_RETRY_BUDGET"] == "on" and edited.load.env["LAB_THROTTLE"] == "on"
    args = edited.services[0].args
    assert (args["queue"], args["queue-limit"], args["max-queue-ms"]) == ("lifo", 40, 300)
    assert edited.faults == BROKEN.faults and edited.load.env["LAB_RATE"] == "50"
    assert _edit(workdir, QUEUE_FIX).services == SHEDDING.services
    assert _edit(workdir, {"throttle = false": "throttle = true"}).load == THROTTLING.load


@pytest.mark.parametrize(
    "replacements, message",
    [
        ({"attempts = 4": "attempts = 0"}, "client.attempts must be a whole number from 1 to 10"),
        ({'queue = "fifo"': 'queue = "random"'}, 'api.queue must be one of "fifo", "lifo"'),
        ({"queue_limit = 0": "queue_limit = -1"}, "api.queue_limit must be a whole number"),
        ({"retry_budget = false": "retry_budget = 1"}, "client.retry_budget must be true or false"),
        ({"seconds = 4": "seconds = 60"}, "trigger.seconds must be a number of seconds"),
        ({"[api]": "[server]"}, "api"),
    ],
)
def test_bad_edits_are_one_line_errors(workdir, replacements, message):
    with pytest.raises(LabError, match=message) as caught:
        _edit(workdir, replacements)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "replacements, reason",
    [
        ({"rate_per_s = 50": "rate_per_s = 20"}, "asks the users to come less often"),
        ({"seconds = 4": "seconds = 1"}, "is a smaller spike"),
        ({"factor = 4": "factor = 2"}, "is a smaller spike"),
        ({"attempts = 4": "attempts = 1"}, "turns every retry off"),
        ({"timeout_s = 1": "timeout_s = 10"}, "changes how long the callers wait"),
    ],
)
def test_guards_refuse_what_removes_the_experiment_and_say_why(workdir, replacements, reason):
    refusals = _refusals(_edit(workdir, replacements))
    assert len(refusals) == 1 and reason in refusals[0], refusals


def test_the_variants_that_change_the_experiment_are_refused_and_the_fixes_are_not(workdir):
    assert _refusals(LOW_LOAD) and _refusals(SHORT_TRIGGER)
    for fixed in (_edit(workdir, BUDGET_FIX), _edit(workdir, QUEUE_FIX), THROTTLING, SHEDDING):
        assert _refusals(fixed) == []


def _phase(arrivals: float, goodput: float) -> Phase:
    return Phase(0, 5, arrivals, arrivals, 50, goodput, round(goodput / arrivals, 3), 100)


def _result(after_share: float, before_s: float = 6.0, trigger_s: float = 7.5):
    before, after = _phase(50, 50), _phase(50, 50 * after_share)
    before = replace(before, start_s=1.0, end_s=1.0 + before_s)
    n = OverloadNumbers(
        target_rate_per_s=50, capacity_per_s=100, trigger_start_s=trigger_s,
        trigger_end_s=trigger_s + 5, arrivals_end_s=21, before=before, during=_phase(50, 18),
        after=after, goodput_before_per_s=50, goodput_after_per_s=after.goodput_per_s,
        goodput_ratio=after_share, throughput_after_per_s=50, busy_ratio=0.5,
        scheduled_rate_per_s=50, offered_rate_per_s=50, offered_error=0.0, send_lag_p99_ms=2.0,
        requests=1000,
        outcomes={"ok": 1000}, attempts=1000, retries=0, api_completed=1000, api_late=0,
        api_shed={}, api_queue_max=10, overload_attempts=0, overload_accepts=0,
        attempts_per_accept=math.nan, limit=LimitNumbers(0, 0, 0, 0, 0, 0, math.nan, ((), ())),
        series={},
    )  # fmt: skip
    return replace(summarize("after", []), derived=n)


def test_a_fix_holds_when_goodput_comes_back_after_a_trigger_that_came():
    assert holds(_result(0.95))
    assert not holds(_result(0.5))
    assert not holds(_result(0.95, before_s=1.0))  # too few requests before the trigger
    assert not holds(_result(0.95, trigger_s=1.0))  # the trigger came before any load
    assert not holds(summarize("after", []))
    shown = EXERCISE.measure(_result(0.5))
    assert "goodput 25/s for 50 new requests/s (50 %)" in shown and "50 % of before" in shown


@pytest.mark.parametrize(
    "replacements, reason",
    [({"attempts = 4": "attempts = 1"}, "turns every retry off"),
     ({"rate_per_s = 50": "rate_per_s = 20"}, "asks the users to come less often")],
)  # fmt: skip
def test_cheats_are_not_a_fix(exercise_env, tmp_path, replacements, reason):
    result = grade_with(exercise_env, tmp_path, "overload", replacements)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a fix" in result.stdout and reason in result.stdout


@pytest.mark.lab
def test_grade_passes_a_bounded_queue_and_fails_dropping_expired_alone(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, "overload", QUEUE_FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout

    assert run_lab_cli("exercise", "overload", "--reset", env=exercise_env).returncode == 0
    expired = grade_with(
        exercise_env, tmp_path, "overload", {"shed_expired = false": "shed_expired = true"}
    )
    assert expired.returncode == 1, expired.stdout + expired.stderr
    assert "after your change: still" in expired.stdout
