"""deploys' exercise (labs/deploys/exercise.py): its solution, round trip, bad edits and
guard (fast), when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.deploys.exercise import EXERCISE, failed, holds, plan_of
from labs.deploys.measure import DeploysNumbers
from labs.deploys.scenario import BIG_BANG, CANARY, VARIANTS
from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from tests.conftest import grade_with

CANARY_FIX = {
    'strategy = "replace"': 'strategy = "weights"',
    "steps = [100]": "steps = [1, 10, 50, 100]",
    "enabled = false": "enabled = true",
}
CLEAN = DeploysNumbers(
    requests=3525, failed=1, proxy_failed=0, v2_answers=4, v2_failed=1, reloads=2,
    deploy_s=4.6, crossing_s=5.9, last_v2_s=6.4, rollback_lag_s=0.5, p99_window_ms=4.1,
    decisions=(),
)  # fmt: skip


def test_deploys_solution_moves_to_weights_steps_and_a_gate():
    diff = exercise.solution_diff(get_lab("deploys"))
    assert '+strategy = "weights"' in diff and "+steps = [1, 10, 50, 100]" in diff
    assert "+enabled = true" in diff


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=lambda v: v.name)
def test_settings_round_trip_to_the_same_plan(workdir: Path, variant):
    path = workdir / "settings.toml"
    path.parent.mkdir(parents=True)
    path.write_text(EXERCISE.settings(variant))
    assert plan_of(exercise.load_edit(get_lab("deploys"), path)) == plan_of(variant)


def test_a_fix_holds_only_with_no_gap_few_failures_and_v2_tried():
    def result(**changes: int) -> object:
        return replace(summarize("after", []), derived=replace(CLEAN, **changes))

    assert holds(result())
    for wrong in ({"proxy_failed": 1}, {"failed": 61}, {"v2_answers": 0}, {"requests": 1999}):
        assert not holds(result(**wrong)), wrong
    shown = failed(result(failed=856, proxy_failed=136, v2_answers=2463))
    assert shown == (
        "856 of 3525 requests failed (136 by nginx while no release listened), v2 answered 2463"
    )


def test_the_guard_refuses_a_rollout_that_never_ships():
    (never_deployed,) = EXERCISE.guards
    silent = replace(CANARY, controller=replace(plan_of(CANARY), steps=((0.0, 0),)))
    assert "never gives v2 any traffic" in (never_deployed(silent) or "")
    assert never_deployed(CANARY) is None and never_deployed(BIG_BANG) is None


@pytest.mark.parametrize(
    "old, new, message",
    [('strategy = "replace"', 'strategy = "rolling"', 'must be one of "replace", "weights"'),
     ("steps = [100]", "steps = [150]", "rollout.steps"),
     ("threshold = 0.05", "threshold = 2", "gate.threshold"),
     ("step_s = 2", "step_s = 0", "rollout.step_s")],
)  # fmt: skip
def test_deploys_bad_edits_are_one_line_errors(workdir: Path, old, new, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    text = EXERCISE.settings(BIG_BANG)
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("deploys"), path)


@pytest.mark.lab
def test_deploys_grade_passes_the_canary(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, "deploys", CANARY_FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout
