"""retries' exercise (labs/retries/exercise.py): solution, bad edits, the guard, the
grade's verdict and words (fast); grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.retries.exercise import after_the_outage, holds
from labs.retries.measure import RetriesNumbers
from tests.conftest import grade_with
from tests.labs.retries.test_lab import BASE

LAB = "retries"
GOOD = (
    '[gateway.retry]\nstrategy = "full-jitter"\nmax_attempts = 20\nbase_s = 2.0\ncap_s = 4.0\n'
    "deadline_s = 10.0\n[gateway.retry_budget]\nenabled = false\nratio = 0.1\n"
)


def test_solution_adds_jitter_and_nothing_else():
    diff = exercise.solution_diff(get_lab(LAB))
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == ['-strategy = "exponential"', '+strategy = "full-jitter"']


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('"full-jitter"', '"jittery"', "gateway.retry.strategy must be one of"),
        ("max_attempts = 20", "max_attempts = 0", "from 1 to 100"),
        ("deadline_s = 10.0", 'deadline_s = "10s"', "deadline_s must be a number of seconds"),
        ("enabled = false", "enabled = 1", "true or false"),
        # waits longer than the run can show: their requests would end after Locust stops
        ("base_s = 2.0", "base_s = 30.0", r"gateway.retry.base_s must be .*, > 0 and <= 10$"),
        ("cap_s = 4.0", "cap_s = 60", r"gateway.retry.cap_s must be .*, > 0 and <= 10$"),
        ("deadline_s = 10.0", "deadline_s = 10.5", r"gateway.retry.deadline_s must be .*<= 10$"),
        (
            "[gateway.retry_budget]\nenabled = false\nratio = 0.1\n",
            "",
            r"\[gateway.retry_budget\] is missing",
        ),
        # without its header the budget's keys land in [gateway.retry]: named, not ignored
        ("[gateway.retry_budget]\n", "", r"unknown key gateway.retry.enabled \(known: "),
    ],
)
def test_bad_edits_are_one_line_errors(tmp_path: Path, old: str, new: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab(LAB), path)


def test_a_budget_is_passed_to_the_gateway(tmp_path: Path):
    path = tmp_path / "edit.toml"
    path.write_text(GOOD.replace("enabled = false", "enabled = true").replace("0.1", "0.2"))
    args = exercise.load_edit(get_lab(LAB), path).services[-1].args
    assert (args["budget"], args["budget-ratio"], args["retry-strategy"]) == (
        "on", 0.2, "full-jitter"
    )  # fmt: skip


@pytest.mark.parametrize("old, new", [("max_attempts = 20", "max_attempts = 1"),
                                      ('"exponential"', '"none"')])  # fmt: skip
def test_turning_retries_off_is_not_a_fix(exercise_env, tmp_path, old, new):
    result = grade_with(exercise_env, tmp_path, LAB, {old: new})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a fix" in result.stdout and "retries off" in result.stdout


def _graded(**fields: object) -> VariantResult:
    result = summarize("exponential", [])
    numbers = RetriesNumbers(**{**asdict(BASE), **fields})
    result = result.with_derived(numbers)
    return result


def test_a_fix_holds_only_when_the_users_are_served_at_the_end():
    assert holds(_graded())
    # waits that outlast the run: the stuck users are never recorded as failures, but
    # they make no requests at the end
    assert not holds(_graded(final_rate_share=0.3))
    assert not holds(_graded(final_success_rate=0.9))
    assert not holds(_graded(failed_after_outage=40))
    assert not holds(_graded(success_rate=0.95))
    assert not holds(summarize("exponential", []))  # nothing measured: nothing holds


def test_the_grade_says_what_happened_after_the_outage():
    text = after_the_outage(_graded(failed_after_outage=110, success_rate=0.924,
                                    max_bucket_after_outage=102))  # fmt: skip
    assert text.startswith(
        "110 requests failed after the api was back (client success rate 92.4%, largest "
        "100 ms wave of api attempts 102 vs 40 it can take); in the last 3 s 400 requests, "
        "100.0% succeeded, at 90% of the rate before the incident"
    )
    assert "the users are stuck" in after_the_outage(_graded(final_requests=0))


@pytest.mark.lab
def test_grade_passes_full_jitter_and_fails_exponential(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, LAB, {'"exponential"': '"full-jitter"'})
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout and "failed after the api was back" in fixed.stdout

    # `lab exercise` keeps the edit: go back to synchronized backoff, only shorter
    broken = grade_with(
        exercise_env,
        tmp_path,
        LAB,
        {'"full-jitter"': '"exponential"', "base_s = 2.0": "base_s = 1.0"},
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "after your change: still" in broken.stdout
