"""Exercises, the engine's side (on keepalive-502's): settings round trip, create, hints,
a file that is not TOML, nginx's own message (fast). Each lab's own exercise is tested
with the lab (tests/labs/<lab>/test_exercise.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import all_labs, get_lab
from tests.conftest import grade_with

LABS_WITH_EXERCISES = [lab for lab in all_labs() if lab.exercise]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_EXERCISES_DIR", str(tmp_path / "exercises"))
    return tmp_path / "exercises"


@pytest.fixture
def env(exercise_env: dict[str, str]) -> dict[str, str]:
    return exercise_env


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


def test_a_settings_file_that_is_not_toml_is_a_one_line_error(workdir):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[api\n")
    with pytest.raises(LabError, match="at line 1"):
        exercise.load_edit(get_lab("keepalive-502"), path)


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
