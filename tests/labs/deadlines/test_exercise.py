"""deadlines' exercise (labs/deadlines/exercise.py): its solution, bad edits and guards
(fast), what it measures and when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from labs.deadlines.exercise import EXERCISE, apply_settings, holds, settings, wasted
from labs.deadlines.measure import DeadlineNumbers
from labs.deadlines.scenario import DEADLINE, PER_HOP
from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from tests.conftest import grade_with
from tests.labs.deadlines.test_lab import DEADLINE as CLEAN

FIX = {
    "deadline_propagation = false": "deadline_propagation = true",
    "shed_expired = false": "shed_expired = true",
    "shed_hopeless = false": "shed_hopeless = true",
}


def _edited(variant_text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in variant_text, old
        variant_text = variant_text.replace(old, new)
    return variant_text


def _load(tmp_path: Path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return exercise.load_edit(get_lab("deadlines"), path)


def test_the_solution_turns_propagation_and_shedding_on():
    diff = exercise.solution_diff(get_lab("deadlines"))
    assert "+deadline_propagation = true" in diff
    assert "+shed_expired = true" in diff and "+shed_hopeless = true" in diff


def test_settings_round_trip_both_variants():
    for variant in (PER_HOP, DEADLINE):
        applied = apply_settings(PER_HOP, tomllib.loads(settings(variant)))
        assert applied.services == variant.services and applied.load == variant.load


def test_a_fix_holds_only_when_little_is_wasted_and_work_still_gets_done():
    def of(**changes: float):
        return replace(summarize("after", []), derived=replace(CLEAN, **changes))

    assert holds(of())
    assert not holds(of(wasted_pct=2.5)) and not holds(of(useful_work_s=9.0))
    assert wasted(of()) == (
        "0.3 % of the api's slow-phase work (0.1 of 30.0 work-seconds) done after the client "
        "stopped waiting; 29.9 useful"
    )
    assert isinstance(CLEAN, DeadlineNumbers)


def test_guards_name_the_edits_that_remove_what_is_under_test(tmp_path: Path):
    retries_removed, edge_too_short = EXERCISE.guards
    text = settings(PER_HOP)
    no_retries = _load(tmp_path, _edited(text, {**FIX, "attempts = 3": "attempts = 1"}))
    assert retries_removed(no_retries) and edge_too_short(no_retries) is None
    short = _load(tmp_path, _edited(text, {**FIX, "timeout_s = 1.0": "timeout_s = 0.1"}))
    assert edge_too_short(short) and retries_removed(short) is None
    for variant in (PER_HOP, DEADLINE):
        assert retries_removed(variant) is None and edge_too_short(variant) is None


@pytest.mark.parametrize(
    "replacements, message",
    [({"attempts = 3": "attempts = 0"}, "from 1 to 10"),
     ({"deadline_propagation = false": 'deadline_propagation = "yes"'}, "true or false"),
     ({"margin_ms = 100": "margin_ms = -1"}, "margin_ms"),
     ({"timeout_s = 1.0": "timeout_s = 0"}, "timeout_s")],
)  # fmt: skip
def test_bad_edits_are_one_line_errors(tmp_path: Path, replacements, message):
    with pytest.raises(LabError, match=message):
        _load(tmp_path, _edited(settings(PER_HOP), replacements))


@pytest.mark.lab
def test_deadlines_grade_passes_the_fix_and_fails_propagation_alone(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, "deadlines", FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout
