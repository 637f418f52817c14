"""`lab check --repeat N` and `--junit FILE` end to end through the CLI, with the lab run
replaced by synthetic outcomes (no nginx, no load: the real runs are the lab tests')."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labs.engine import cli
from labs.engine.cli import running
from labs.engine.model.verdicts import CheckResult
from labs.engine.runner import RunOutcome
from tests.engine.model.test_verdicts import lab_with

LAB = lab_with()


def ok(name: str, value: float | None) -> CheckResult:
    return CheckResult(name, True, f"{name} detail", proof="proven", value=value)


@pytest.fixture
def runs(monkeypatch, tmp_path: Path):
    """Each `lab check` lab run returns the next list of checks from `runs.checks`."""

    class Runs:
        checks: list[list[CheckResult]] = []
        count = 0

    counter = itertools.count(1)

    def fake_run(lab, _args, quiet=False):
        assert quiet
        Runs.count = next(counter)
        return RunOutcome(lab, {}, Runs.checks[Runs.count - 1], tmp_path / f"run{Runs.count}")

    monkeypatch.setattr(running, "get_lab", lambda name: LAB)
    monkeypatch.setattr(running, "run_with_progress", fake_run)
    return Runs


def test_repeat_json_gives_pass_rate_and_band_and_fails_unless_every_run_passed(
    runs, capsys, tmp_path: Path
):
    runs.checks = [
        [ok("a", 3), ok("b", None)],
        [ok("a", 9), CheckResult("b", False, "b failed")],
        [ok("a", 4), ok("b", None)],
    ]
    junit_file = tmp_path / "out" / "junit.xml"
    code = cli.main(["check", "t", "--repeat", "3", "--json", "--junit", str(junit_file)])
    assert code == 1 and runs.count == 3
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is False and document["repeat"] == 3
    (lab,) = document["labs"]
    a, b = lab["checks"]
    assert (a["runs"], a["passed"], a["pass_rate"], a["values"]) == (3, 3, 1.0, [3, 9, 4])
    assert (a["min"], a["median"], a["max"]) == (3, 4, 9)
    assert (b["passed"], b["verdicts"], b["median"]) == (2, ["PASS", "FAIL", "PASS"], None)
    assert len(lab["results_dirs"]) == 3

    root = ET.parse(junit_file).getroot()
    assert [s.get("name") for s in root.iter("testsuite")] == [f"t run {n}/3" for n in (1, 2, 3)]
    assert (root.get("tests"), root.get("failures")) == ("6", "1")
    (failure,) = root.iter("failure")
    assert failure.get("message") == "b failed"


def test_repeat_text_prints_one_band_line_per_check(runs, capsys):
    runs.checks = [[ok("a", 1), ok("b", None)], [ok("a", 2), ok("b", None)]]
    assert cli.main(["check", "t", "--repeat", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("t run 1/2: PASS") and lines[1].startswith("t run 2/2: PASS")
    assert lines[2:] == ["2/2 (100 %) t/a: min 1 / median 1.5 / max 2", "2/2 (100 %) t/b: n/a"]


def test_without_repeat_the_output_is_unchanged_and_junit_has_one_suite(
    runs, capsys, tmp_path: Path
):
    runs.checks = [[ok("a", 1)]]
    junit_file = tmp_path / "junit.xml"
    assert cli.main(["check", "t", "--json", "--junit", str(junit_file)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["lab"] == "t" and document["checks"][0]["value"] == 1
    (suite,) = ET.parse(junit_file).getroot().iter("testsuite")
    assert suite.get("name") == "t" and suite.get("tests") == "1"


def test_an_unwritable_junit_file_is_refused_before_any_run(runs, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["check", "t", "--junit", str(blocker / "junit.xml")]) == 2
    assert runs.count == 0
