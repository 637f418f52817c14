"""Exercises: create, hints, solution, bad edits, guards (fast), and grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import all_labs, get_lab
from tests.conftest import grade_with, run_lab_cli

LABS_WITH_EXERCISES = [lab for lab in all_labs() if lab.exercise]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_EXERCISES_DIR", str(tmp_path / "exercises"))
    return tmp_path / "exercises"


@pytest.fixture
def env(exercise_env: dict[str, str]) -> dict[str, str]:
    return exercise_env


def test_keepalive_lab_has_an_exercise():
    assert "keepalive-502" in [lab.name for lab in LABS_WITH_EXERCISES]


@pytest.mark.parametrize("lab", LABS_WITH_EXERCISES, ids=lambda lab: lab.name)
def test_settings_round_trip_to_the_broken_and_fixed_variants(workdir, lab):
    spec = lab.exercise
    for name in (spec.broken, spec.fixed):
        path = workdir / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec.settings(lab.variant(name)))
        edited = exercise.load_edit(lab, path)
        original = lab.variant(name)
        assert (edited.nginx, edited.services) == (original.nginx, original.services)
    assert spec.hints, "2-3 hints, gentle to explicit"


def test_create_keeps_edits_unless_reset(workdir):
    lab = get_lab("keepalive-502")
    workspace, written = exercise.create(lab)
    assert written and workspace.settings.is_file() and workspace.task.is_file()
    assert "keepalive_timeout_s = 1.0" in workspace.settings.read_text()
    workspace.settings.write_text("# mine\n")
    assert exercise.create(lab) == (workspace, False)
    assert workspace.settings.read_text() == "# mine\n"
    exercise.create(lab, reset=True)
    assert "keepalive_timeout_s = 1.0" in workspace.settings.read_text()


def test_hints_are_revealed_one_at_a_time(workdir):
    lab = get_lab("keepalive-502")
    exercise.create(lab)
    hints = lab.exercise.hints
    shown = [exercise.next_hint(lab) for _ in range(len(hints) + 1)]
    assert [n for n, _ in shown] == [*range(1, len(hints) + 1), len(hints)]
    assert [text for _, text in shown[: len(hints)]] == list(hints)


def test_solution_is_the_diff_from_broken_to_fixed():
    diff = exercise.solution_diff(get_lab("keepalive-502"))
    assert "-keepalive_timeout_s = 1.0" in diff and "+keepalive_timeout_s = 75.0" in diff


@pytest.mark.parametrize(
    "text, message",
    [
        ("[api\n", "at line 1"),
        ('[api]\nkeepalive_timeout_s = "long"\n[nginx.upstream]\nkeepalive = 32\n'
         'keepalive_timeout = "60s"\n', "must be a number"),
        ("[api]\nkeepalive_timeout_s = 1.0\n", "nginx"),
        ('[api]\nkeepalive_timeout_s = 1.0\n[nginx.upstream]\nkeepalive = -1\n'
         'keepalive_timeout = "60s"\n', "whole number from 0 to 1024"),
    ],
)  # fmt: skip
def test_bad_edits_are_one_line_errors(workdir, text, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("keepalive-502"), path)


@pytest.mark.parametrize(
    "replacements, reason",
    [({"keepalive = 32": "keepalive = 0"}, "turns nginx's connection pool off"),
     ({'keepalive_timeout = "60s"': 'keepalive_timeout = "10ms"'}, "same as having no pool")],
)  # fmt: skip
def test_cheats_are_not_a_fix(env, tmp_path, replacements, reason):
    result = grade_with(env, tmp_path, "keepalive-502", replacements)
    assert result.returncode == 1
    assert "not a fix" in result.stdout and reason in result.stdout


def test_value_nginx_rejects_gets_nginx_message_and_line(env, tmp_path):
    result = grade_with(
        env, tmp_path, "keepalive-502", {'keepalive_timeout = "60s"': 'keepalive_timeout = "0.9s"'}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # Our line, then nginx's own two lines as nginx wrote them (not merged into one).
    ours, emerg, failed = result.stderr.strip().splitlines()
    conf = Path(env["LAB_EXERCISES_DIR"]) / "keepalive-502" / "rendered" / "nginx.conf"
    assert ours == f"lab: error: nginx rejected the config {conf}:"
    assert emerg.startswith("  nginx: [emerg] ") and f"{conf}:" in emerg
    assert failed == f"  nginx: configuration file {conf} test failed"


def test_every_lab_has_an_exercise():
    assert [lab.name for lab in all_labs() if not lab.exercise] == []


def test_a_lab_without_an_exercise_is_a_one_line_error(workdir):
    lab = replace(get_lab("keepalive-502"), exercise=None)
    for action in (exercise.create, exercise.next_hint, exercise.solution_diff):
        with pytest.raises(LabError, match="keepalive-502 has no exercise yet"):
            action(lab)


@pytest.mark.lab
def test_grade_passes_the_fix_and_fails_the_broken_settings(env, tmp_path):
    fixed = grade_with(
        env, tmp_path, "keepalive-502", {"keepalive_timeout_s = 1.0": "keepalive_timeout_s = 75"}
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout and "after: 0 of" in fixed.stdout

    broken = run_lab_cli("exercise", "keepalive-502", "--reset", env=env)
    assert broken.returncode == 0
    result = run_lab_cli(
        "grade", "keepalive-502", "--results-dir", str(tmp_path / "results"), env=env, timeout=180
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "after your change: still" in result.stdout and "expected 0 502s" in result.stdout


@pytest.mark.lab
@pytest.mark.parametrize(
    "replacements, shown",
    [
        # still shorter than nginx's 60s: the grade idles connections past 5 s, and the api
        # closes them under nginx (502s too, when a burst races the close)
        ({"keepalive_timeout_s = 1.0": "keepalive_timeout_s = 5"},
         "the api closed"),
        # nginx gives up first, but before the traffic's ~1 s gap: no 502s, no pool either
        ({'keepalive_timeout = "60s"': 'keepalive_timeout = "900ms"'},
         "of the traffic rode a reused connection"),
    ],
    ids=["api-5s", "nginx-900ms"],
)  # fmt: skip
def test_grade_fails_half_fixes(env, tmp_path, replacements, shown):
    result = grade_with(env, tmp_path, "keepalive-502", replacements)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "after your change: still" in result.stdout and shown in result.stdout
    assert "the fix holds" not in result.stdout


def test_grade_refuses_an_api_timeout_it_cannot_reach(env, tmp_path):
    result = grade_with(
        env, tmp_path, "keepalive-502", {"keepalive_timeout_s = 1.0": "keepalive_timeout_s = 30"}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "api.keepalive_timeout_s = 30 cannot be graded" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
