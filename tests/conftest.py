"""Shared fixtures. Tests that need nginx fail (not skip) without it: `make test`
installs it, and a silently skipped lab check proves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAB = [sys.executable, "-m", "labs.engine.cli"]


@pytest.fixture
def lab_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `lab` subprocess with its own state directory."""
    return {**os.environ, "LAB_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}


def passed_check(
    lab: str, env: dict[str, str], results_dir: Path, timeout: float = 180, *args: str
) -> dict:
    """`lab check LAB --json [ARGS]`: exactly one JSON document, every check passed and
    proven; the document."""
    result = run_lab_cli(
        "check", lab, "--json", "--results-dir", str(results_dir), *args, env=env, timeout=timeout
    )
    assert result.stdout.count("\n") == 1, f"exactly one JSON document: {result.stderr[-2000:]}"
    document = json.loads(result.stdout)
    failed = [c for c in document["checks"] if not c["passed"]]
    assert result.returncode == 0 and document["passed"], failed
    # Every check judged, and each proven to fail on its variants' twins' numbers.
    unproven = [
        c for c in document["checks"] if c["fails_without_fix"] not in (True, "not_applicable")
    ]
    assert not unproven, unproven
    assert all(c["judged"] for c in document["checks"])
    topology = args[args.index("--topology") + 1] if "--topology" in args else "local"
    assert document["topology"] == topology, "results.json names the topology it ran on"
    return document


def run_lab_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAB, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout
    )


@pytest.fixture
def exercise_env(lab_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`lab_env` with a private exercises folder."""
    return {**lab_env, "LAB_EXERCISES_DIR": str(tmp_path / "exercises")}


def grade_with(
    env: dict[str, str], tmp_path: Path, lab: str, replacements: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`lab exercise LAB`, edit its settings file (each old text must be there), `lab grade`."""
    assert run_lab_cli("exercise", lab, env=env).returncode == 0
    path = Path(env["LAB_EXERCISES_DIR"]) / lab / "settings.toml"
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {path}"
        text = text.replace(old, new)
    path.write_text(text)
    return run_lab_cli(
        "grade", lab, "--results-dir", str(tmp_path / "results"), env=env, timeout=240
    )
