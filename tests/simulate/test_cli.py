"""`lab simulate` on the command line: help, the JSON document, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labs.simulate.retries import STRATEGIES
from tests.conftest import run_lab_cli


@pytest.mark.parametrize("words", [["simulate"], ["simulate", "retries"], ["simulate", "overload"]])
def test_help(words: list[str], lab_env: dict[str, str]):
    result = run_lab_cli(*words, "--help", env=lab_env)
    assert result.returncode == 0 and "usage: lab simulate" in result.stdout


def test_retries_json(lab_env: dict[str, str], tmp_path: Path):
    plot = tmp_path / "retries.png"
    result = run_lab_cli("simulate", "retries", "--clients", "10,40", "--runs", "3",
                         "--json", "--plot", str(plot), env=lab_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"] == "retries" and document["runs"] == 3
    rows = document["results"]
    assert [(r["strategy"], r["clients"]) for r in rows[:5]] == [(s, 10) for s in STRATEGIES]
    assert len(rows) == 10
    assert set(rows[0]["calls"]) == {"mean", "sd", "low", "high"}
    assert set(rows[0]["completion_s"]) == {"mean", "sd", "low", "high"}
    assert plot.read_bytes()[:4] == b"\x89PNG" and document["plot"] == str(plot)
    assert "retries: none at N=10: 3 runs done" in result.stderr


def test_overload_json_at_a_lab_variant(lab_env: dict[str, str]):
    result = run_lab_cli(
        "simulate", "overload", "--variant", "short-trigger", "--json", env=lab_env
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == "recovers" and document["params"]["trigger_s"] == 1.0
    assert {"goodput_before", "goodput_after", "goodput_ratio", "attempts"} <= set(document)


def test_overload_sweep_json_and_heat_map(lab_env: dict[str, str], tmp_path: Path):
    plot = tmp_path / "boundary.png"
    words = ["--sweep", "--triggers", "1,6", "--factors", "2,4", "--json", "--plot", str(plot)]
    result = run_lab_cli("simulate", "overload", *words, env=lab_env)
    assert result.returncode == 0, result.stderr
    boundary = json.loads(result.stdout)["boundary"]
    assert boundary["trigger_s"] == [1.0, 6.0] and boundary["factors"] == [2.0, 4.0]
    assert boundary["verdicts"][1] == ["recovers", "stays down"]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_overload_text_names_the_verdict(lab_env: dict[str, str]):
    result = run_lab_cli("simulate", "overload", "--trigger", "1", env=lab_env)
    assert result.returncode == 0 and "recovers" in result.stdout, result.stderr


@pytest.mark.parametrize(
    "words",
    [
        ["retries", "--clients", "-5"],
        ["retries", "--clients", "ten"],
        ["retries", "--clients", "100000"],
        ["retries", "--runs", "0"],
        ["retries", "--strategy", "linear"],
        ["overload", "--rate", "-1"],
        ["overload", "--variant", "nope"],
        ["overload", "--trigger", "30"],
        ["overload", "--rate", "1000000", "--arrivals", "3600"],
        ["overload", "--sweep", "--triggers", ",".join(["1"] * 30), "--factors",
         ",".join(["2"] * 30)],
        ["nope"],
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(words: list[str], lab_env: dict[str, str]):
    result = run_lab_cli("simulate", *words, "--no-plot", env=lab_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def test_overload_fix_switches_change_the_verdict(lab_env: dict[str, str]):
    for switch in ("--adaptive-limit", "--retry-budget", "--throttle"):
        result = run_lab_cli("simulate", "overload", switch, "on", "--json", env=lab_env)
        assert json.loads(result.stdout)["verdict"] == "recovers", switch
    result = run_lab_cli("simulate", "overload", "--variant", "adaptive-limit",
                         "--adaptive-limit", "off", "--json", env=lab_env)  # fmt: skip
    assert json.loads(result.stdout)["verdict"] == "stays down"
