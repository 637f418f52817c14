"""Fixtures every lab's tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private exercises folder (LAB_EXERCISES_DIR) for in-process exercise calls."""
    folder = tmp_path / "exercises"
    monkeypatch.setenv("LAB_EXERCISES_DIR", str(folder))
    return folder


@pytest.fixture
def env(exercise_env: dict[str, str]) -> dict[str, str]:
    """The environment for `lab` subprocesses, with the same private exercises folder."""
    return exercise_env
