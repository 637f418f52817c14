"""Shared fixtures. Tests that need nginx fail (not skip) without it: `make test`
installs it, and a silently skipped lab check proves nothing."""

from __future__ import annotations

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


def run_lab_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAB, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout
    )
