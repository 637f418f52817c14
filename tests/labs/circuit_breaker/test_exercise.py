"""circuit-breaker's exercise (labs/circuit_breaker/exercise.py): solution, bad edits,
guards, cheats (fast); grading for real (-m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.circuit_breaker.exercise import fix_holds
from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from tests.conftest import grade_with, run_lab_cli

LAB = get_lab("circuit-breaker")
FIX = {
    "connect_s = 0\n": "connect_s = 0.25\n",
    "read_s = 0\n": "read_s = 1\n",
    "deadline_s = 0\n": "deadline_s = 2\n",
    'pool = "shared"': 'pool = "per-downstream"',
    "max_connections = 30": "max_connections = 15",
    "max_in_flight = 0": "max_in_flight = 15",
    "enabled = false": "enabled = true",
}


def _edited(replacements: dict[str, str]) -> str:
    text = LAB.exercise.settings(LAB.variant("naive"))
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_solution_adds_timeouts_bulkheads_and_the_breaker():
    diff = exercise.solution_diff(LAB)
    for line in (
        "+read_s = 1.0",
        '+pool = "per-downstream"',
        "+max_in_flight = 15",
        "+enabled = true",
    ):
        assert line in diff, diff


def test_the_fix_edit_becomes_the_gateway_command_line(workdir):
    path = workdir / "fix.toml"
    path.parent.mkdir(parents=True)
    path.write_text(_edited(FIX))
    gateway = next(s for s in exercise.load_edit(LAB, path).services if s.name == "gateway")
    assert gateway.args["pool"] == "per-downstream" and gateway.args["breaker"] == "on"
    assert gateway.args["read-timeout"] == 1.0 and gateway.args["max-in-flight"] == 15
    assert gateway.depends_on == {"payments-url": "payments", "catalog-url": "catalog"}


@pytest.mark.parametrize(
    "replacements, message",
    [
        ({"read_s = 0\n": 'read_s = "1s"\n'}, "read_s must be a number"),
        ({"max_in_flight = 0": "max_in_flight = 2.5"}, "max_in_flight must be a whole number"),
        ({'pool = "shared"': 'pool = "private"'}, 'must be "shared" or "per-downstream"'),
        ({"max_in_flight = 0": "max_in_flight = 10"}, 'needs pool = "per-downstream"'),
        ({"enabled = false": 'enabled = "yes"'}, "true or false"),
        ({"deadline_s = 0\n": "deadline_s = -1\n"}, ">= 0 seconds"),
        ({"[breaker]": "[circuit]"}, "breaker"),
    ],
)
def test_bad_edits_are_one_line_errors(workdir, replacements, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(_edited(replacements))
    with pytest.raises(LabError, match=message) as caught:
        exercise.load_edit(LAB, path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "replacements, reason",
    [
        ({**FIX, "reset_timeout_s = 2.0": "reset_timeout_s = 3600"}, "never closes"),
        ({**FIX, "max_in_flight = 15": "max_in_flight = 1"}, "removes the payments calls"),
        ({"max_connections = 30": "max_connections = 0"}, "means no limit"),
        ({**FIX, "read_s = 1\n": "read_s = 0.01\n"}, "fails healthy calls too"),
    ],
)
def test_cheats_are_not_a_fix(exercise_env, tmp_path, replacements, reason):
    result = grade_with(exercise_env, tmp_path, "circuit-breaker", replacements)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a fix" in result.stdout and reason in result.stdout


def _refusals(workdir: Path, replacements: dict[str, str]) -> list[str]:
    """What the exercise's guards say about an edit (no load runs)."""
    path = workdir / "edit.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_edited(replacements))
    edited = exercise.load_edit(LAB, path)
    return [reason for guard in LAB.exercise.guards if (reason := guard(edited))]


@pytest.mark.parametrize(
    "replacements",
    [
        {**FIX, "max_connections = 30": "max_connections = 0"},  # per-downstream, bulkhead
        {**{k: v for k, v in FIX.items() if k != "max_in_flight = 0"},
         "max_connections = 30": "max_connections = 0"},  # per-downstream, no bulkhead
        {"max_connections = 30": "max_connections = 0"},  # the shared pool
    ],
    ids=["with-bulkhead", "own-pools", "shared"],
)  # fmt: skip
def test_an_unlimited_pool_is_not_a_fix(workdir, replacements):
    refusals = _refusals(workdir, replacements)
    assert len(refusals) == 1, refusals
    assert refusals[0].startswith("max_connections = 0 means no limit (aiohttp's TCPConnector")
    assert "removes the bulkhead under test" in refusals[0]


def test_the_fix_passes_every_guard(workdir):
    assert _refusals(workdir, FIX) == []


@pytest.mark.lab
def test_grade_passes_the_fix_and_fails_timeouts_alone(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, "circuit-breaker", FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout

    assert run_lab_cli("exercise", "circuit-breaker", "--reset", env=exercise_env).returncode == 0
    timeouts_only = {k: v for k, v in FIX.items() if k.startswith(("connect", "read", "deadline"))}
    partial = grade_with(exercise_env, tmp_path, "circuit-breaker", timeouts_only)
    assert partial.returncode == 1, partial.stdout + partial.stderr
    assert "after your change: still" in partial.stdout


def test_fix_holds_judges_a_run_with_nothing_in_it_as_not_holding():
    assert fix_holds(summarize("after", [])) is False
