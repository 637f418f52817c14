"""load-balancing's exercise (labs/load_balancing/exercise.py): settings, bad edits, guards,
what it measures and when a fix holds (fast), grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.engine.runner import RunOptions
from labs.load_balancing.exercise import holds, slow_phase_numbers
from tests.conftest import run_lab_cli
from tests.labs.load_balancing.test_lab import FAILED_OVER, ROUND_ROBIN, phase, result

LAB = "load-balancing"


def edited(workdir: Path, replacements: dict[str, str]) -> Path:
    """The broken variant's settings file with each old text replaced (it must be there)."""
    workspace, _ = exercise.create(get_lab(LAB))
    text = workspace.settings.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    workspace.settings.write_text(text)
    return workspace.settings


def test_solution_switches_round_robin_to_least_conn():
    diff = exercise.solution_diff(get_lab(LAB))
    assert '-balance = ""' in diff and '+balance = "least_conn"' in diff
    assert diff.count("\n+") == 2  # the header line and balance: nothing else changes


def test_the_broken_file_shows_every_knob(workdir: Path):
    text = edited(workdir, {}).read_text()
    for line in ("replicas = 4", 'balance = ""', "weights = [1, 1, 1, 1]", "max_fails = 1",
                 'fail_timeout = "2s"', 'next_upstream = "error timeout"'):  # fmt: skip
        assert line in text, line


def test_equal_weights_are_no_weights_and_p2c_renders(workdir: Path):
    path = edited(
        workdir,
        {"weights = [1, 1, 1, 1]": "weights = [3, 3, 3, 3]",
         'balance = ""': 'balance = "random two least_conn"'},
    )  # fmt: skip
    variant = exercise.load_edit(get_lab(LAB), path)
    assert variant.nginx.upstream.weights == ()
    assert variant.nginx.upstream.balance == "random two least_conn"
    exercise.check_nginx_config(get_lab(LAB), variant)


@pytest.mark.parametrize(
    "replacements, message",
    [
        ({'balance = ""': 'balance = "least_conn; server 127.0.0.1:1"'}, "balance must be"),
        ({"weights = [1, 1, 1, 1]": "weights = [1, 1, 1]"}, "one weight per replica"),
        ({"weights = [1, 1, 1, 1]": "weights = [1, 1, 1, 0]"}, "from 1 to 100"),
        ({"weights = [1, 1, 1, 1]": "weights = 1"}, "weights must be a list"),
        ({"max_fails = 1": "max_fails = -1"}, "max_fails must be a whole number"),
        ({'fail_timeout = "2s"': 'fail_timeout = "2.5s"'}, "not an nginx time"),
        ({'next_upstream = "error timeout"': 'next_upstream = "error; return 200"'},
         "unknown"),
        ({"replicas = 4": "replicas = 0"}, "api.replicas"),
        ({'balance = ""': "balance = 1"}, "balance must be"),
        ({'fail_timeout = "2s"\n': ""}, "nginx.upstream.fail_timeout is missing"),
    ],
)  # fmt: skip
def test_bad_edits_are_one_line_errors(workdir: Path, replacements, message):
    path = edited(workdir, replacements)
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab(LAB), path)


@pytest.mark.parametrize(
    "replacements, reason",
    [
        ({"replicas = 4": "replicas = 3", "weights = [1, 1, 1, 1]": "weights = [1, 1, 1]"},
         "out of the upstream"),
        ({"weights = [1, 1, 1, 1]": "weights = [20, 20, 20, 1]"}, "Keep the weights equal"),
        ({'balance = ""': 'balance = "ip_hash"'}, "all requests go to one replica"),
        ({'balance = ""': 'balance = "hash $remote_addr"'}, "all requests go to one replica"),
    ],
)  # fmt: skip
def test_cheats_are_not_a_fix_and_nothing_runs(workdir: Path, tmp_path: Path, replacements, reason):
    edited(workdir, replacements)
    grade = exercise.grade(get_lab(LAB), RunOptions(results_root=tmp_path / "results"))
    assert not grade.passed and grade.outcome is None
    assert grade.verdict.startswith("not a fix") and reason in grade.verdict
    assert not (tmp_path / "results").exists()


def test_least_conn_holds_and_round_robin_does_not():
    assert holds(result("after", FAILED_OVER))
    assert not holds(result("after", ROUND_ROBIN))
    assert "it got 21.0 % of the requests, mean 274 ms, p90 1004 ms" in slow_phase_numbers(
        result("after", ROUND_ROBIN)
    )
    assert slow_phase_numbers(result("after", FAILED_OVER)).endswith("answered again 5.3 s later")


@pytest.mark.parametrize(
    "changes",
    [
        {"slow_mean_ms": 144.0},  # > half round robin's best mean (287.5 ms)
        {"slow_p90_ms": 501.0},
        {"by_phase": {"healthy": phase(400, 55, 60, 0.05)}},  # api-4 barely used while healthy
        {"dead_tries": 8},
        {"rejoined_after_s": None, "back_after_s": None},
        {"last_error_after_s": 4.5},
    ],
)
def test_a_fix_that_misses_one_verdict_does_not_hold(changes: dict):
    assert not holds(result("after", replace(FAILED_OVER, **changes)))


def test_rejoining_is_judged_by_the_edited_fail_timeout():
    """fail_timeout 5s: nginx may wait 3 s longer before it tries the replica again."""
    late = replace(FAILED_OVER, rejoined_after_s=7.0)
    assert not holds(result("after", late))
    assert holds(result("after", replace(late, fail_timeout_s=5.0)))


def test_a_run_without_numbers_does_not_hold():
    assert not holds(VariantResult("after", 38, 0, 0, {}, 0, 0, 0, 0, 0, 0))


@pytest.mark.lab
def test_grade_passes_least_conn_and_fails_round_robin(lab_env, tmp_path: Path):
    env = {**lab_env, "LAB_EXERCISES_DIR": str(tmp_path / "exercises")}
    results = ["--results-dir", str(tmp_path / "results")]
    assert run_lab_cli("exercise", LAB, env=env).returncode == 0
    settings = tmp_path / "exercises" / LAB / "settings.toml"
    broken = run_lab_cli("grade", LAB, *results, env=env, timeout=240)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "after your change: still" in broken.stdout

    settings.write_text(settings.read_text().replace('balance = ""', 'balance = "least_conn"'))
    fixed = run_lab_cli("grade", LAB, *results, env=env, timeout=240)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout
