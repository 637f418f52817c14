"""Verdicts you can trust (issue 16): unknown and missing keys in a learner's settings are
one-line errors naming the dotted key, and a grade whose untouched "before" run did not
reproduce the failure is void, never a pass. All fast: no load runs."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from labs.engine import cli
from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.engine.model.catalog import all_labs, get_lab
from labs.keepalive_502.measure import KeepaliveNumbers

LABS_WITH_EXERCISES = [lab for lab in all_labs() if lab.exercise]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_EXERCISES_DIR", str(tmp_path / "exercises"))
    (tmp_path / "exercises").mkdir()
    return tmp_path / "exercises"


def broken_settings(lab_name: str) -> str:
    lab = get_lab(lab_name)
    return lab.exercise.settings(lab.variant(lab.exercise.broken))


def load_error(path: Path, lab_name: str, text: str) -> str:
    path.write_text(text)
    with pytest.raises(LabError) as caught:
        exercise.load_edit(get_lab(lab_name), path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- unknown keys -------------------------------------------------------------------------


def test_an_unknown_key_is_a_one_line_error_naming_its_dotted_path(workdir):
    path = workdir / "settings.toml"
    text = broken_settings("keepalive-502").replace(
        "[nginx.upstream]\n", "[nginx.upstream]\nbogus_key = 3\n"
    )
    assert load_error(path, "keepalive-502", text) == (
        f"{path}: unknown key nginx.upstream.bogus_key "
        "(known: nginx.upstream.keepalive, nginx.upstream.keepalive_timeout)"
    )


def test_an_unknown_table_is_named_not_its_keys(workdir):
    path = workdir / "settings.toml"
    text = broken_settings("keepalive-502") + "\n[nginx.upstrem]\nkeepalive = 0\n"
    assert load_error(path, "keepalive-502", text) == (
        f"{path}: unknown key nginx.upstrem (known: nginx.upstream)"
    )


@pytest.mark.parametrize("lab", LABS_WITH_EXERCISES, ids=lambda lab: lab.name)
def test_every_exercise_refuses_a_bogus_key_in_every_table(workdir, lab):
    text = broken_settings(lab.name)
    path = workdir / "settings.toml"
    top = load_error(path, lab.name, "bogus_key = 3\n" + text)
    assert f"{path}: unknown key bogus_key (known: " in top
    tables = [line for line in text.splitlines() if line.startswith("[")]
    assert tables
    for header in tables:
        edited = text.replace(f"{header}\n", f"{header}\nbogus_key = 3\n", 1)
        message = load_error(path, lab.name, edited)
        assert f"unknown key {header.strip('[]')}.bogus_key (known: " in message, message


def test_known_keys_are_the_rendered_files_keys_tables_included():
    parsed = tomllib.loads(broken_settings("keepalive-502"))
    assert exercise.dotted_keys(parsed) == [
        "api",
        "api.keepalive_timeout_s",
        "nginx",
        "nginx.upstream",
        "nginx.upstream.keepalive",
        "nginx.upstream.keepalive_timeout",
    ]
    assert exercise.dotted_keys({"weights": [1, {"a": 2}], "t": {}}) == ["weights", "t"]


# --- missing keys: no quotes from str(KeyError) --------------------------------------------


@pytest.mark.parametrize(
    "lab_name, remove, message",
    [
        # labs.engine.exercises.edits raises KeyError("api.keepalive_timeout_s is missing")
        ("keepalive-502", "keepalive_timeout_s = 1.0\n", "api.keepalive_timeout_s is missing"),
        # a lab's own lookup raises KeyError("fail_max"): the dotted key is found
        ("circuit-breaker", "fail_max = 5\n", "breaker.fail_max is missing"),
        ("graceful-shutdown", "rounds = 2\n", "rollout.rounds is missing"),
    ],
)
def test_a_missing_key_reads_without_quotes(workdir, lab_name, remove, message):
    path = workdir / "settings.toml"
    text = broken_settings(lab_name)
    assert text.count(remove) == 1, remove
    assert load_error(path, lab_name, text.replace(remove, "")) == f"{path}: {message}"


# --- the verdict: void when "before" did not show the failure ------------------------------


def run_of(variant: str, ok: int, bad: int, status: int = 502) -> VariantResult:
    requests = [Request(1000.0 + i * 0.01, "/", 200, 5.0) for i in range(ok)]
    requests += [Request(1000.0 + (ok + i) * 0.01, "/", status, 5.0) for i in range(bad)]
    # the keepalive lab's own numbers (its derive): a pool that served the traffic
    numbers = KeepaliveNumbers(
        traffic_requests=ok + bad, reused_pct=100.0, api_reused_pct=100.0, api_closed_first=0
    )
    return replace(summarize(variant, requests), derived=numbers, extra=asdict(numbers))


KEEPALIVE_POOL = (
    "100 % of the traffic rode a reused connection, the api closed 0 idle connections first"
)


KEEPALIVE = get_lab("keepalive-502").exercise


def test_the_fix_holds_when_before_failed_and_after_did_not():
    passed, verdict = exercise.judge(
        KEEPALIVE, run_of("before", 290, 10), run_of("after", 300, 0), "keepalive-502"
    )
    assert passed
    assert verdict == (
        f"before your change: 10 of 300 requests were 502 (3.3 %), {KEEPALIVE_POOL}; "
        f"after: 0 of 300 requests were 502 (0.0 %), {KEEPALIVE_POOL} - the fix holds"
    )


def test_still_broken_when_after_fails_too():
    passed, verdict = exercise.judge(
        KEEPALIVE, run_of("before", 290, 10), run_of("after", 295, 5), "keepalive-502"
    )
    assert not passed
    assert "after your change: still 5 of 300 requests were 502" in verdict


@pytest.mark.parametrize("after_bad", [0, 5])
def test_void_when_the_untouched_broken_run_did_not_reproduce_the_failure(after_bad):
    passed, verdict = exercise.judge(
        KEEPALIVE, run_of("before", 300, 0), run_of("after", 300 - after_bad, after_bad),
        "keepalive-502",
    )  # fmt: skip
    assert not passed
    assert verdict.startswith(
        "void: the untouched broken settings did not reproduce the failure this time "
        f"(before: 0 of 300 requests were 502 (0.0 %), {KEEPALIVE_POOL}; "
    )
    assert verdict.endswith("run `lab grade keepalive-502` again")
    assert "the fix holds" not in verdict


def test_lab_grade_prints_a_void_grade_and_exits_1(workdir, monkeypatch, capsys):
    """cmd_grade -> grade -> judge, with the load replaced by a "before" that held."""
    lab = get_lab("keepalive-502")
    exercise.create(lab)
    runs = {"before": run_of("before", 300, 0), "after": run_of("after", 300, 0)}
    monkeypatch.setattr(exercise, "check_nginx_config", lambda lab, variant: None)
    monkeypatch.setattr(
        exercise,
        "run_lab",
        lambda graded, options: SimpleNamespace(results=runs, results_dir=workdir / "results"),
    )
    assert cli.main(["grade", "keepalive-502"]) == 1
    printed = capsys.readouterr().out
    assert "void: the untouched broken settings did not reproduce the failure" in printed
    assert "the fix holds" not in printed
