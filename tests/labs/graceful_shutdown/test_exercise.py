"""The graceful-shutdown exercise (labs/graceful_shutdown/exercise.py): settings, bad
edits and guards (fast), grading (-m lab)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.graceful_shutdown.exercise import MIN_POOL_IDLE_S, REQUEST_GAP_S, apply_settings
from labs.graceful_shutdown.scenario import (
    LOAD,
    MAX_DURATION_S,
    NAIVE,
    REPLICAS,
    ROLLOUT_TAIL_S,
    ROUNDS,
    THINK_S,
    USERS,
    VARIANTS,
    load,
    rounds_of,
)
from tests.conftest import REPO_ROOT, grade_with

LAB = "graceful-shutdown"
DRAIN = {'shutdown_mode = "immediate"': 'shutdown_mode = "drain"'}
VALID = """\
[api]
shutdown_mode = "drain"
shutdown_timeout_s = 4.0
[nginx.upstream]
keepalive = 32
keepalive_timeout = "2s"
[nginx.proxy]
next_upstream = "error timeout"
[rollout]
rounds = 2
"""


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """The shared exercises folder, created: these tests write settings files into it."""
    workdir.mkdir()
    return workdir


def test_settings_round_trip_keeps_the_whole_variant_the_rollout_included(workdir):
    lab = get_lab(LAB)
    for name in ("sigterm-naive", "graceful"):
        path = workdir / f"{name}.toml"
        path.write_text(lab.exercise.settings(lab.variant(name)))
        edited = exercise.load_edit(lab, path)
        original = lab.variant(name)
        assert (edited.nginx, edited.services, edited.faults, edited.load) == (
            original.nginx, original.services, original.faults, original.load,
        )  # fmt: skip


def test_the_rollout_sets_the_length_of_the_load():
    """Locust's --run-time is only a cap: the load ends ROLLOUT_TAIL_S after every replica
    has answered after its last restart (1 + rounds processes each)."""
    for rounds in (0, 1, 2):
        env = load(rounds).env
        assert env["LAB_ROLLOUT_BOOTS"] == str(REPLICAS * (rounds + 1))
        assert float(env["LAB_ROLLOUT_TAIL_S"]) == ROLLOUT_TAIL_S
    assert load(ROUNDS) == LOAD and LOAD.duration_s == MAX_DURATION_S
    assert all(v.load == LOAD for v in VARIANTS)
    edited = apply_settings(NAIVE, tomllib.loads(VALID.replace("rounds = 2", "rounds = 1")))
    assert edited.load == load(1) and rounds_of(edited) == 1


def test_solution_drains_and_changes_nothing_else():
    diff = exercise.solution_diff(get_lab(LAB))
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == ['-shutdown_mode = "immediate"', '+shutdown_mode = "drain"']


@pytest.mark.parametrize(
    "old, new, message",
    [('"drain"', '"graceful"', 'must be one of "immediate", "default", "drain"'),
     ("shutdown_timeout_s = 4.0", "shutdown_timeout_s = 0", "shutdown_timeout_s"),
     ("shutdown_timeout_s = 4.0", 'shutdown_timeout_s = "4s"', "shutdown_timeout_s"),
     ("keepalive = 32", "keepalive = -1", "from 0 to 1024"),
     ("rounds = 2", "rounds = 3", "from 0 to 2"),
     ("[rollout]\nrounds = 2\n", "", "rollout")],
)  # fmt: skip
def test_bad_edits_are_one_line_errors(workdir, old, new, message):
    path = workdir / "bad.toml"
    assert old in VALID
    path.write_text(VALID.replace(old, new))
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab(LAB), path)


@pytest.mark.parametrize(
    "replacements, reason",
    [({**DRAIN, "rounds = 2": "rounds = 0"}, "Keep the rollout"),
     ({"rounds = 2": "rounds = 1"}, "fewer chances to lose a request"),
     ({'next_upstream = "error timeout"': 'next_upstream = "error timeout non_idempotent"'},
      "re-send a POST"),
     ({**DRAIN, "keepalive = 32": "keepalive = 0"}, "turns nginx's connection pool off"),
     ({'keepalive_timeout = "2s"': 'keepalive_timeout = "10ms"'}, "the same as keepalive = 0")],
)  # fmt: skip
def test_cheats_are_not_a_fix(exercise_env, tmp_path, replacements, reason):
    result = grade_with(exercise_env, tmp_path, LAB, replacements)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a fix" in result.stdout and reason in result.stdout


def _refusals(workdir: Path, text: str) -> list[str]:
    """What the exercise's guards say about an edit (no load runs)."""
    lab = get_lab(LAB)
    path = workdir / "edit.toml"
    path.write_text(text)
    edited = exercise.load_edit(lab, path)
    return [reason for guard in lab.exercise.guards if (reason := guard(edited))]


@pytest.mark.parametrize("timeout", ["0", "1ms", "20ms", "29ms"])
def test_an_nginx_pool_that_closes_before_reuse_is_not_a_fix(workdir, timeout):
    text = VALID.replace('keepalive_timeout = "2s"', f'keepalive_timeout = "{timeout}"')
    refusals = _refusals(workdir, text)
    assert len(refusals) == 1, refusals
    assert refusals[0].startswith(f'nginx.upstream.keepalive_timeout = "{timeout}" closes')
    assert "the same as keepalive = 0" in refusals[0] and "one every ~9 ms here" in refusals[0]


@pytest.mark.parametrize("timeout", ["30ms", "100ms", "2s"])
def test_an_nginx_pool_that_is_reused_passes_the_guards(workdir, timeout):
    text = VALID.replace('keepalive_timeout = "2s"', f'keepalive_timeout = "{timeout}"')
    assert _refusals(workdir, text) == []


def test_the_pool_bound_comes_from_the_labs_load():
    """MIN_POOL_IDLE_S is ~3 gaps between requests to one replica under the lab's load;
    the think time it assumes is the one LOAD passes to loadtests/orders.py."""
    orders = (REPO_ROOT / "loadtests" / "orders.py").read_text()
    for name, value in zip(("MIN", "MAX"), THINK_S, strict=True):
        assert f'os.environ.get("LAB_THINK_{name}_S"' in orders
        assert float(LOAD.env[f"LAB_THINK_{name}_S"]) == value
    assert LOAD.users == USERS
    assert 0.008 < REQUEST_GAP_S < 0.012
    assert 2.5 * REQUEST_GAP_S <= MIN_POOL_IDLE_S <= 4 * REQUEST_GAP_S


@pytest.mark.lab
def test_grade_holds_with_a_drain_and_shows_the_naive_stop_failing(exercise_env, tmp_path):
    result = grade_with(exercise_env, tmp_path, LAB, DRAIN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the fix holds" in result.stdout and "after: 0 of" in result.stdout
    assert "before your change: 0 of" not in result.stdout, "the naive stop loses requests"
