"""idempotency's exercise (labs/idempotency/exercise.py): its solution, bad edits and
guards (fast), what it measures and when a fix holds (fast), and grading for real (-m lab)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labs.engine.analysis.metrics import summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.idempotency.exercise import EXERCISE, duplicates, holds
from labs.idempotency.measure import IdempotencyNumbers
from labs.idempotency.scenario import KEYED, LOCAL_KEYS, NAIVE, load
from tests.conftest import grade_with, run_lab_cli

IDEMPOTENCY_FIX = {
    "idempotency_key = false": "idempotency_key = true",
    'idempotency = "off"': 'idempotency = "redis"',
}


def numbers(**changes: float) -> IdempotencyNumbers:
    """A clean idempotency-key run's numbers, with `changes`."""
    clean = IdempotencyNumbers(
        intents=875, finished_intents=870, pending_intents=5, orders_stored=870,
        duplicates=0, duplicate_pct=0.0, duplicated_intents=0, lost=0, confirmed_missing=0,
        mismatches=0, listing_truncated=False, client_retries=57, client_gave_up=0,
        api_created=870, api_replayed=57, api_lost_responses=57, api_in_flight_409=0,
        api_key_reused_422=0,
    )  # fmt: skip
    return replace(clean, **changes)


def result_with(n: IdempotencyNumbers):
    result = summarize("after", [])
    result = replace(result, derived=n)
    return result


def test_idempotency_solution_sends_a_key_and_shares_the_store():
    diff = exercise.solution_diff(get_lab("idempotency"))
    assert "+idempotency_key = true" in diff and '+idempotency = "redis"' in diff


def test_a_fix_holds_only_with_no_duplicate_lost_or_mismatched_order():
    assert holds(result_with(numbers()))
    for wrong in ({"duplicates": 1}, {"lost": 1}, {"mismatches": 1}, {"client_gave_up": 1},
                  {"finished_intents": 299}):  # fmt: skip
        assert not holds(result_with(numbers(**wrong))), wrong
    shown = duplicates(result_with(numbers(duplicates=57, duplicate_pct=6.69, lost=2)))
    assert shown == "57 duplicate orders for 870 intended (6.7 %), 2 lost"


def test_guards_name_the_edits_that_remove_what_is_under_test():
    retries_removed, keys_per_replica = EXERCISE.guards
    assert retries_removed(replace(KEYED, load=load(1, send_key=True)))
    assert keys_per_replica(LOCAL_KEYS)
    for variant in (NAIVE, KEYED):
        assert retries_removed(variant) is None and keys_per_replica(variant) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("[client]\nattempts = 0\nidempotency_key = true\n[api]\nidempotency = \"redis\"\n"
         "key_ttl_s = 600\n", "from 1 to 20"),
        ("[client]\nattempts = 8\nidempotency_key = \"yes\"\n[api]\nidempotency = \"redis\"\n"
         "key_ttl_s = 600\n", "true or false"),
        ("[client]\nattempts = 8\nidempotency_key = true\n[api]\nidempotency = \"disk\"\n"
         "key_ttl_s = 600\n", "must be one of \"off\", \"local\", \"redis\""),
        ("[client]\nattempts = 8\nidempotency_key = true\n[api]\nidempotency = \"redis\"\n"
         "key_ttl_s = 0\n", "key_ttl_s"),
        ("[client]\nattempts = 8\nidempotency_key = true\n", "api"),
    ],
)  # fmt: skip
def test_idempotency_bad_edits_are_one_line_errors(workdir, text, message):
    path = workdir / "bad.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(LabError, match=message):
        exercise.load_edit(get_lab("idempotency"), path)


@pytest.mark.parametrize(
    "replacements, reason",
    [({**IDEMPOTENCY_FIX, "attempts = 8": "attempts = 1"}, "turns the client's retries off"),
     ({"idempotency_key = false": "idempotency_key = true",
       'idempotency = "off"': 'idempotency = "local"'},
      "must be shared by every replica")],
)  # fmt: skip
def test_idempotency_cheats_are_not_a_fix(env, tmp_path, replacements, reason):
    result = grade_with(env, tmp_path, "idempotency", replacements)
    assert result.returncode == 1
    assert "not a fix" in result.stdout and reason in result.stdout


@pytest.mark.lab
def test_idempotency_grade_passes_the_fix_and_fails_half_of_it(env, tmp_path):
    fixed = grade_with(env, tmp_path, "idempotency", IDEMPOTENCY_FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "the fix holds" in fixed.stdout and "after: 0 duplicate orders" in fixed.stdout

    assert run_lab_cli("exercise", "idempotency", "--reset", env=env).returncode == 0
    key_only = grade_with(
        env, tmp_path, "idempotency", {"idempotency_key = false": "idempotency_key = true"}
    )  # the api still ignores the key
    assert key_only.returncode == 1, key_only.stdout + key_only.stderr
    assert "after your change: still" in key_only.stdout
    assert "expected 0 duplicates and 0 lost orders" in key_only.stdout
