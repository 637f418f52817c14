"""keepalive-502's exercise (labs/keepalive_502/exercise.py): the grade's load from the
edited settings, what it refuses, bad edits, guards and what "the fix holds" means (fast);
grading for real (-m lab)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import all_labs, get_lab
from labs.keepalive_502.exercise import grade_gaps, holds, measure, settings
from labs.keepalive_502.measure import KeepaliveNumbers
from labs.keepalive_502.scenario import CLOSED_FIRST_STRAY, OFFSET_MS
from tests.conftest import grade_with, run_lab_cli

LAB = get_lab("keepalive-502")


def test_keepalive_lab_has_an_exercise():
    assert "keepalive-502" in [lab.name for lab in all_labs() if lab.exercise]


def test_solution_is_the_diff_from_broken_to_fixed():
    diff = exercise.solution_diff(LAB)
    assert "-keepalive_timeout_s = 1.0" in diff and "+keepalive_timeout_s = 75.0" in diff


@pytest.mark.parametrize(
    "api_s, nginx_s, gaps",
    [
        # the api gives up first: just past its timeout it closes every pooled connection
        # (whoever closes first shows), and the straddling gap races it: 502s
        (1.0, 60.0, [1.0, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0]),
        (5.0, 60.0, [1.0, 5.1, 1.0, 1.0, 1.0, 1.0, 5.0]),
        (15.0, 60.0, [1.0, 15.1, 1.0, 1.0, 1.0, 1.0, 15.0]),
        # nginx gives up first, within reach: probed just past and around its timeout
        (3.0, 2.0, [1.0, 2.1, 1.0, 1.0, 1.0, 1.0, 2.0]),
        # ... under the traffic's gap (hint 3's old 900ms): the traffic finds no pool
        (1.0, 0.9, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9]),
        # nginx gives up first, beyond a run: the traffic alone (no race is possible)
        (75.0, 60.0, [1.0]),
        (16.0, 15.5, [1.0]),
    ],
)
def test_the_grade_drives_gaps_around_the_shorter_idle_timeout(api_s, nginx_s, gaps):
    assert grade_gaps(api_s, nginx_s) == gaps


@pytest.mark.parametrize("api_s, nginx_s", [(30.0, 60.0), (60.0, 60.0), (16.0, 20.0)])
def test_an_api_timeout_a_run_cannot_reach_while_nginx_holds_longer_is_refused(api_s, nginx_s):
    with pytest.raises(ValueError, match=r"^api.keepalive_timeout_s = \d+ cannot be graded"):
        grade_gaps(api_s, nginx_s)


def test_a_gap_never_goes_below_the_sweep():
    gaps = grade_gaps(0.001, 60.0)
    assert min(gaps) == 0.05 and min(gaps) + OFFSET_MS[0] / 1000 > 0


def edit(workdir: Path, api: str, nginx: str) -> Path:
    text = settings(LAB.variant("broken"))
    text = text.replace("keepalive_timeout_s = 1.0", f"keepalive_timeout_s = {api}")
    text = text.replace('keepalive_timeout = "60s"', f'keepalive_timeout = "{nginx}"')
    path = workdir / "settings.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "api, nginx, idle_ms",
    [
        ("5", "60s", "1000,5100,1000,1000,1000,1000,5000"),
        ("75", "60s", "1000"),
        ("1.0", "900ms", "1000,1000,1000,1000,1000,1000,900"),
        ("1.0", "0.9s", "1000"),  # not an nginx time: nginx rejects it, with its message
    ],
)
def test_the_edited_settings_set_the_grades_load(tmp_path, api, nginx, idle_ms):
    variant = exercise.load_edit(LAB, edit(tmp_path, api, nginx))
    assert variant.load.env["LAB_IDLE_MS"] == idle_ms
    assert variant.load.env["LAB_METHOD"] == "POST"
    assert variant.load.duration_s == LAB.variant("broken").load.duration_s


def test_an_ungradable_edit_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(LabError) as caught:
        exercise.load_edit(LAB, edit(tmp_path, "30", "60s"))
    message = str(caught.value)
    assert "\n" not in message and "api.keepalive_timeout_s = 30 cannot be graded" in message


@pytest.mark.parametrize(
    "text, message",
    [
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
        exercise.load_edit(LAB, path)


def test_guards_name_the_edits_that_remove_the_pool(tmp_path):
    pool_removed, pool_emptied = LAB.exercise.guards
    text = settings(LAB.variant("broken")).replace("keepalive = 32", "keepalive = 0")
    (tmp_path / "no-pool.toml").write_text(text)
    assert pool_removed(exercise.load_edit(LAB, tmp_path / "no-pool.toml"))
    assert pool_emptied(exercise.load_edit(LAB, edit(tmp_path, "1.0", "10ms")))
    assert pool_emptied(exercise.load_edit(LAB, edit(tmp_path, "1.0", "0.9s"))) is None
    for variant in LAB.variants:
        assert pool_removed(variant) is None and pool_emptied(variant) is None


def result_with(ok=300, bad=0, reused_pct=100.0, traffic=256, closed=0):
    requests = [Request(1000.0 + i * 0.01, "/work", 200, 5.0) for i in range(ok)]
    requests += [Request(1000.0 + (ok + i) * 0.01, "/work", 502, 5.0) for i in range(bad)]
    result = summarize("after", requests)
    result = replace(result, derived=KeepaliveNumbers(
        traffic_requests=traffic, reused_pct=reused_pct, api_reused_pct=reused_pct,
        api_closed_first=closed,
    ))  # fmt: skip
    return result


@pytest.mark.parametrize(
    "numbers, fix_holds",
    [
        ({}, True),
        ({"bad": 1}, False),  # a 502
        ({"reused_pct": 79.0}, False),  # the pool does not serve the traffic
        ({"reused_pct": None}, False),  # reuse not measured: not a pass
        ({"reused_pct": math.nan}, False),
        ({"traffic": 99}, False),  # too little traffic to judge reuse
        ({"closed": 32}, False),  # the api gave up first (no race needed to see it)
        ({"closed": CLOSED_FIRST_STRAY}, True),  # a stray or two
        ({"closed": None}, True),  # no /proc/net/tcp: the 502s and the reuse decide
        ({"ok": 150}, False),  # too few requests to mean anything
    ],
)
def test_the_fix_holds_only_with_no_502s_reuse_and_nginx_giving_up_first(numbers, fix_holds):
    assert holds(result_with(**numbers)) is fix_holds


def test_nothing_holds_without_numbers():
    assert holds(summarize("after", [])) is False


def test_measure_reads_like_a_grader():
    assert measure(result_with(ok=290, bad=10, reused_pct=52.4, closed=301)) == (
        "10 of 300 requests were 502 (3.3 %), 52 % of the traffic rode a reused connection, "
        "the api closed 301 idle connections first"
    )
    assert measure(result_with(reused_pct=None, closed=None)) == (
        "0 of 300 requests were 502 (0.0 %), n/a of the traffic rode a reused connection, "
        "who closed idle connections first is unknown (no /proc/net/tcp, or no stats)"
    )


@pytest.mark.parametrize(
    "replacements, reason",
    [({"keepalive = 32": "keepalive = 0"}, "turns nginx's connection pool off"),
     ({'keepalive_timeout = "60s"': 'keepalive_timeout = "10ms"'}, "same as having no pool")],
)  # fmt: skip
def test_cheats_are_not_a_fix(env, tmp_path, replacements, reason):
    result = grade_with(env, tmp_path, "keepalive-502", replacements)
    assert result.returncode == 1
    assert "not a fix" in result.stdout and reason in result.stdout


def test_grade_refuses_an_api_timeout_it_cannot_reach(env, tmp_path):
    result = grade_with(
        env, tmp_path, "keepalive-502", {"keepalive_timeout_s = 1.0": "keepalive_timeout_s = 30"}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "api.keepalive_timeout_s = 30 cannot be graded" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


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
