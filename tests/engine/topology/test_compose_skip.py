"""Without a Docker engine the compose tests skip with the reason; in CI (CI=1, true, yes,
...) they fail."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ci import ci_enabled
from tests.conftest import REPO_ROOT


def run_compose_tests(tmp_path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "LAB_COMPOSE": "/bin/true",
        "LAB_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "compose", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/compose/test_compose_lifecycle.py"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip


def test_compose_tests_skip_with_the_reason_without_an_engine(tmp_path):
    result = run_compose_tests(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "skipped" in result.stdout and "no Docker engine answers" in result.stdout
    assert "passed" not in result.stdout and "failed" not in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_compose_tests_fail_in_ci_without_an_engine(tmp_path, ci):
    result = run_compose_tests(tmp_path, ci=ci)
    assert result.returncode == 1, result.stdout[-2000:]
    assert f"CI={ci} but the compose topology cannot run" in result.stdout


@pytest.mark.parametrize("value", ["1", "true", "yes", "True", "TRUE", "on", " true ", "github"])
def test_any_true_ci_value_counts_as_ci(value):
    assert ci_enabled(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", "no", "off", " "])
def test_an_unset_empty_or_false_ci_value_is_not_ci(value):
    assert not ci_enabled(value)
