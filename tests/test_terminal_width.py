"""An 80-column terminal loses nothing: `lab show` wraps prose and prints code whole,
and the summary table of `lab run` / `lab demo` never cuts a number with "…"."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from labs.engine.analysis.metrics import VariantResult
from labs.engine.cli.running import demo_plan
from labs.engine.model.catalog import all_labs, get_lab
from labs.engine.model.spec import Lab
from labs.engine.model.verdicts import CheckResult
from labs.engine.reporting import terminal
from labs.engine.runner import RunOutcome
from tests.conftest import run_lab_cli

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_lines(guide: str) -> list[str]:
    """Every non-blank line of the guide's fenced code blocks."""
    return [
        line.rstrip()
        for block in FENCE.findall(guide)
        for line in block.splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("columns", ["80", "120"])
@pytest.mark.parametrize("lab", all_labs(), ids=lambda lab: lab.name)
def test_show_prints_every_code_line_whole(lab_env, lab, columns):
    result = run_lab_cli("show", lab.name, env={**lab_env, "COLUMNS": columns})
    assert result.returncode == 0, result.stderr
    guide = lab.guide.read_text()
    lines = code_lines(guide)
    assert lines, f"{lab.guide} has no code blocks to check"
    cut = [line for line in lines if line not in result.stdout]
    assert not cut, f"code lines cut or dropped at {columns} columns: {cut}"
    assert not [line for line in result.stdout.splitlines() if line.rstrip().endswith("…")]
    assert "…" not in result.stdout or "…" in guide


@pytest.mark.parametrize("lab", all_labs(), ids=lambda lab: lab.name)
def test_show_wraps_prose_without_dropping_a_word(lab_env, lab):
    """Every word of the guide's bullets and paragraphs is printed (rich renders the
    markup away, so compare the words of plain prose lines only)."""
    result = run_lab_cli("show", lab.name, env={**lab_env, "COLUMNS": "80"})
    printed = set(result.stdout.split())
    prose = FENCE.sub("", lab.guide.read_text())
    words = {
        word
        for line in prose.splitlines()
        if line.startswith(("- ", "* ")) or (line and line[0].isalpha())
        for word in line.lstrip("-* ").split()
        if re.fullmatch(r"[A-Za-z][a-z]+[,.;:]?", word)
    }
    assert words - printed == set()


# --- the summary of `lab run` / `lab demo`, on synthetic outcomes (no load) ------------


def synthetic_outcome(lab: Lab, tmp_path: Path) -> RunOutcome:
    """Every variant with long numbers in every key metric, and checks of every verdict
    with long details (a DEFECT also carries its proof)."""
    results = {}
    for index, variant in enumerate(lab.variants):
        extra = {key.split(".", 1)[1]: 61234.5 + index for key in lab.key_metrics if "." in key}
        results[variant.name] = VariantResult(
            variant=variant.name, duration_s=24.0, requests=1234567, failures=1941,
            status={"200": 1232626, "502": 1941, "429": 98765}, p50_ms=3.2, p95_ms=40.5,
            p99_ms=6123.4, mean_ms=9.1, max_ms=99999.9, rps=812.3, upstream_retried=3291,
            extra=extra,
        )  # fmt: skip
    detail = "expected 0 of the POSTs to fail; measured 1941 of 1234567 (0.157 %) " * 2
    verdicts = [CheckResult(c.name, True, detail, proof="proven") for c in lab.checks[:-3]] + [
        CheckResult(lab.checks[-3].name, False, detail, proof="proven"),
        CheckResult(lab.checks[-2].name, True, detail, proof="defect", proof_detail=detail),
        CheckResult(lab.checks[-1].name, False, "not judged: masked did not run", judged=False),
    ]
    return RunOutcome(lab, results, verdicts, tmp_path)


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


@pytest.mark.parametrize("lab", all_labs(), ids=lambda lab: lab.name)
def test_summary_fits_80_columns_and_cuts_no_number(lab, tmp_path):
    outcome = synthetic_outcome(lab, tmp_path)
    text = render(terminal.summary([outcome]))
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for result in outcome.results.values():
        for key in lab.key_metrics:  # each `name=value` whole, on one line
            assert terminal.metric_text(result, key) in text, key
    lines = text.splitlines()
    for check in outcome.checks:  # the verdict beside its own check
        (row,) = [line for line in lines if f" {check.name} " in line]
        assert check.verdict in row, row
    words = set(text.split())
    assert all(word in words for word in outcome.checks[0].detail.split())


def test_demo_summary_of_several_labs_tells_each_lab_verdict(tmp_path):
    outcomes = [synthetic_outcome(lab, tmp_path) for lab in all_labs()]
    text = render(terminal.summary(outcomes))
    for outcome in outcomes:
        assert f"{outcome.lab.name}: FAIL" in text
    assert "…" not in text


def test_next_steps_fit_80_columns():
    text = terminal.next_steps(get_lab("keepalive-502"), [("lab demo --all", "every demo lab")])
    assert max(len(line) for line in text.splitlines()) <= 80
    for command in ("lab list", "lab show keepalive-502", "lab exercise keepalive-502"):
        assert f"  {command} " in text


def test_demo_runs_one_lab_and_says_which_and_why():
    labs, intro = demo_plan(every=False, duration=None)
    assert [lab.name for lab in labs] == ["keepalive-502"]
    assert intro.startswith("demo: keepalive-502, one lab end to end") and "Why this one" in intro
    assert "lab demo --all" in intro
    every, intro = demo_plan(every=True, duration=None)
    assert [lab.name for lab in every] == [lab.name for lab in all_labs() if lab.demo]
    assert all(lab.name in intro for lab in all_labs())  # run, or named as left out
