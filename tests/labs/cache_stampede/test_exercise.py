"""cache-stampede's exercise (labs/cache_stampede/exercise.py): its solution, bad edits
and guards (fast), what it measures and when a fix holds (fast), and grading for real
(-m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from labs.cache_stampede.exercise import EXERCISE, holds, symptom
from labs.cache_stampede.measure import CacheNumbers
from labs.cache_stampede.scenario import CACHED, STALE_WHILE_REVALIDATE, origin
from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from tests.conftest import grade_with, run_lab_cli

SWR = CacheNumbers(
    computations=6, failed_computations=0, cold_fill=1, expiries=5, per_expiry=1.0,
    per_expiry_max=1, warm_requests=8513, warm_p50_ms=0.6, warm_p99_ms=2.0,
    outage_requests=0, outage_served_pct=100.0, computations_per_s=((), ()),
)  # fmt: skip


def result_with(n: CacheNumbers, status: int = 200) -> VariantResult:
    r = summarize("after", [Request(1.0, "/hot", status, 1.0)])
    return replace(r, derived=n, extra=asdict(n))


def test_solution_serves_stale_while_one_request_refreshes():
    diff = exercise.solution_diff(get_lab("cache-stampede"))
    assert '+use_stale = ["updating"]' in diff and "+background_update = true" in diff


def test_a_fix_holds_only_with_one_computation_per_expiry_and_a_low_p99():
    assert holds(result_with(SWR))
    for wrong in ({"per_expiry": 1.3}, {"expiries": 2}, {"warm_p99_ms": 100.5}):
        assert not holds(result_with(replace(SWR, **wrong))), wrong
    assert not holds(result_with(SWR, status=500))
    assert not holds(summarize("after", []))
    shown = symptom(result_with(replace(SWR, per_expiry=192.6, warm_p99_ms=486.9)))
    assert (
        shown
        == "192.6 origin computations per expiry over 5 expiries, p99 486.9 ms after the warm-up"
    )


def test_a_longer_max_age_is_not_a_fix():
    (longer_max_age,) = EXERCISE.guards
    assert longer_max_age(replace(CACHED, services=origin(max_age_s=30)))
    assert longer_max_age(CACHED) is None and longer_max_age(STALE_WHILE_REVALIDATE) is None


SETTINGS = (
    "[nginx]\ncache_lock = {lock}\nuse_stale = {stale}\nbackground_update = false\n"
    "[origin]\nmax_age_s = {max_age}\nstale_while_revalidate_s = 0\n"
)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lock": "true", "stale": '["sometimes"]', "max_age": 2}, "use_stale must be a list"),
        ({"lock": "true", "stale": '"updating"', "max_age": 2}, "use_stale must be a list"),
        ({"lock": "1", "stale": "[]", "max_age": 2}, "true or false"),
        ({"lock": "true", "stale": "[]", "max_age": 0}, "from 1 to 3600"),
    ],
)
def test_bad_edits_are_one_line_errors(workdir, values, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(SETTINGS.format(**values))
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("cache-stampede"), path)


def test_a_longer_max_age_is_refused_by_grade(exercise_env, tmp_path):
    result = grade_with(
        exercise_env, tmp_path, "cache-stampede", {"max_age_s = 2": "max_age_s = 60"}
    )
    assert result.returncode == 1
    assert "not a fix" in result.stdout and "rarer, not smaller" in result.stdout


@pytest.mark.lab
def test_grade_passes_stale_while_revalidate_and_fails_the_lock_alone(exercise_env, tmp_path):
    fixed = grade_with(
        exercise_env, tmp_path, "cache-stampede", {"use_stale = []": 'use_stale = ["updating"]'}
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout

    assert run_lab_cli("exercise", "cache-stampede", "--reset", env=exercise_env).returncode == 0
    lock = grade_with(
        exercise_env, tmp_path, "cache-stampede", {"cache_lock = false": "cache_lock = true"}
    )
    assert lock.returncode == 1, lock.stdout + lock.stderr
    assert "after your change: still" in lock.stdout
