"""stale-dns's exercise (labs/stale_dns/exercise.py): its solution, bad edits and guards
(fast), what it measures and when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace

import pytest

from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.stale_dns.exercise import EXERCISE, apply_settings, failures, holds, settings
from labs.stale_dns.measure import StaleDnsNumbers
from labs.stale_dns.scenario import RELOADED, RESOLVE_ONCE, RESOLVER
from tests.conftest import grade_with, run_lab_cli

RESOLVER_FIX = {'lookup = "upstream"': 'lookup = "resolver"'}
FOLLOWED = StaleDnsNumbers(
    move_s=4.59, moved_s=5.23, reload_s=math.nan, before_requests=1204, before_failed=0,
    after_requests=2219, after_failed=381, after_failed_pct=17.17, settled_requests=1450,
    settled_failed=0, last_failure_s=1.469,
)  # fmt: skip


def result_with(n: StaleDnsNumbers):
    return replace(summarize("after", []), derived=n)


def test_stale_dns_solution_switches_to_the_resolver():
    diff = exercise.solution_diff(get_lab("stale-dns"))
    assert '+lookup = "resolver"' in diff


@pytest.mark.parametrize("variant", [RESOLVE_ONCE, RESOLVER, RELOADED])
def test_every_variant_round_trips_through_its_settings_file(variant):
    applied = apply_settings(RESOLVE_ONCE, tomllib.loads(settings(variant)))
    assert replace(applied, name=variant.name, summary=variant.summary, twin=variant.twin) == (
        variant
    )


def test_a_fix_holds_only_with_no_failure_once_the_answer_expired():
    assert holds(result_with(FOLLOWED))
    for wrong in ({"settled_failed": 1}, {"settled_requests": 99}):
        assert not holds(result_with(replace(FOLLOWED, **wrong))), wrong
    assert failures(result_with(FOLLOWED)) == (
        "after the move 381 of 2219 failed (17.2 %); from 3 s after it 0 of 1450 failed (0.0 %)"
    )


def test_guards_name_the_edits_that_remove_what_is_under_test():
    move_removed, dns_removed = EXERCISE.guards
    assert move_removed(replace(RESOLVE_ONCE, faults=()))
    assert dns_removed(replace(RESOLVE_ONCE, nginx=replace(RESOLVE_ONCE.nginx, dns="")))
    for variant in (RESOLVE_ONCE, RESOLVER, RELOADED):
        assert move_removed(variant) is None and dns_removed(variant) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ('[nginx]\nlookup = "hosts"\nvalid_s = 1\n[deploy]\nmove = true\nreload_nginx = false\n',
         'must be one of "address", "upstream", "resolver"'),
        ('[nginx]\nlookup = "resolver"\nvalid_s = 0\n[deploy]\nmove = true\n'
         "reload_nginx = false\n", "from 1 to 3600"),
        ('[nginx]\nlookup = "resolver"\nvalid_s = 1\n[deploy]\nmove = "yes"\n'
         "reload_nginx = false\n", "true or false"),
        ('[nginx]\nlookup = "resolver"\nvalid_s = 1\n', "deploy"),
    ],
)  # fmt: skip
def test_stale_dns_bad_edits_are_one_line_errors(workdir, text, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("stale-dns"), path)


@pytest.mark.parametrize(
    "replacements, reason",
    [({"move = true": "move = false"}, "takes the move away"),
     ({'lookup = "upstream"': 'lookup = "address"'}, "takes DNS away")],
)  # fmt: skip
def test_stale_dns_cheats_are_not_a_fix(env, tmp_path, replacements, reason):
    result = grade_with(env, tmp_path, "stale-dns", replacements)
    assert result.returncode == 1
    assert "not a fix" in result.stdout and reason in result.stdout


@pytest.mark.lab
def test_stale_dns_grade_passes_the_resolver_and_fails_a_long_valid(env, tmp_path):
    fixed = grade_with(env, tmp_path, "stale-dns", RESOLVER_FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout

    assert run_lab_cli("exercise", "stale-dns", "--reset", env=env).returncode == 0
    cached = grade_with(env, tmp_path, "stale-dns", {**RESOLVER_FIX, "valid_s = 1": "valid_s = 30"})
    assert cached.returncode == 1, cached.stdout + cached.stderr
    assert "after your change: still" in cached.stdout
