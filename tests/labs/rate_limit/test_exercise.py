"""rate-limit's exercise (labs/rate_limit/exercise.py): its solution, bad edits, the guard,
what it measures and when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.rate_limit.exercise import EXERCISE, fix_holds, noisy_vs_limit
from labs.rate_limit.measure import RateLimitNumbers, TenantNumbers, Tenants
from labs.rate_limit.scenario import NONE, PER_INSTANCE, REDIS, api
from tests.conftest import grade_with

LAB = "rate-limit"
FIX = {'store = "local"': 'store = "redis"'}


def test_solution_moves_the_counters_to_redis():
    diff = exercise.solution_diff(get_lab(LAB))
    assert '-store = "local"' in diff and '+store = "redis"' in diff
    assert "rate_per_s" not in "".join(line for line in diff.splitlines() if line[:1] in "+-")


def numbers(noisy_rps: float, quiet_pct: float = 100.0) -> RateLimitNumbers:
    noisy = TenantNumbers(requests=1800, accepted=150, offered_rps=150.0, accepted_rps=noisy_rps)
    quiet = TenantNumbers(requests=95, success_pct=quiet_pct)
    return RateLimitNumbers(10, 150.0, noisy_rps, round(noisy_rps / 10, 3), quiet_pct, 2.0,
                            Tenants(noisy, quiet), {})  # fmt: skip


def result_with(n: RateLimitNumbers | None):
    result = summarize("after", [])
    result = replace(result, derived=n)
    return result


def test_a_fix_holds_when_the_noisy_tenant_gets_the_limit_and_the_quiet_one_gets_through():
    assert fix_holds(result_with(numbers(10.4)))
    assert not fix_holds(result_with(numbers(29.6))), "per replica: 3 x the limit"
    assert not fix_holds(result_with(numbers(8.4))), "below the tolerance"
    assert not fix_holds(result_with(numbers(10.0, quiet_pct=98.9)))
    assert not fix_holds(result_with(None)), "nothing measured, nothing holds"
    assert noisy_vs_limit(result_with(numbers(29.6, quiet_pct=100.0))) == (
        "noisy accepted 29.6/s of 150/s offered (2.96 x the 10/s limit); quiet 100.0 % accepted"
    )


def test_the_guard_names_a_changed_contract_and_passes_the_variants():
    (contract_changed,) = EXERCISE.guards
    for variant in (NONE, PER_INSTANCE, REDIS):
        assert contract_changed(variant) is None, variant.name
    divided = replace(PER_INSTANCE, services=api("local", rate=3.3))
    assert "rate_per_s = 3.3 changes the tenants' contract of 10/s" in (
        contract_changed(divided) or ""
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ('[api.ratelimit]\nstore = "memcached"\nrate_per_s = 10\nburst = 10\n',
         'must be one of "off", "local", "redis"'),
        ('[api.ratelimit]\nstore = "redis"\nrate_per_s = 0\nburst = 10\n', "> 0"),
        ('[api.ratelimit]\nstore = "redis"\nrate_per_s = 10\nburst = 2.5\n', "whole number"),
        ('[api.ratelimit]\nstore = "redis"\nburst = 10\n', "rate_per_s is missing"),
        ("[api]\n", r"\[api.ratelimit\] is missing"),
        # a key in the wrong table is named, not ignored
        ('[api]\nstore = "redis"\n', r"unknown key api.store \(known: api.ratelimit\)"),
    ],
)  # fmt: skip
def test_bad_edits_are_one_line_errors(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab(LAB), path)


def test_a_shared_store_runs_redis_and_a_local_one_does_not(tmp_path: Path):
    lab = get_lab(LAB)
    path = tmp_path / "edit.toml"
    path.write_text('[api.ratelimit]\nstore = "redis"\nrate_per_s = 10\nburst = 5\n')
    edited = exercise.load_edit(lab, path)
    assert edited.parts == ("redis",)
    assert edited.services[0].depends_on == {"redis-url": "redis"}
    assert edited.services[0].args["ratelimit-burst"] == 5


def test_dividing_the_rate_by_the_replicas_is_not_a_fix(exercise_env, tmp_path):
    result = grade_with(exercise_env, tmp_path, LAB, {"rate_per_s = 10": "rate_per_s = 3.3"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not a fix" in result.stdout and "changes the tenants' contract" in result.stdout


@pytest.mark.lab
def test_grade_passes_a_shared_store_and_fails_no_limit(exercise_env, tmp_path):
    fixed = grade_with(exercise_env, tmp_path, LAB, FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout and "before your change: noisy accepted" in fixed.stdout

    # `lab exercise` keeps the edit: turn the limiter off instead
    off = grade_with(exercise_env, tmp_path, LAB, {'store = "redis"': 'store = "off"'})
    assert off.returncode == 1, off.stdout + off.stderr
    assert "after your change: still" in off.stdout and "x the 10/s limit" in off.stdout
