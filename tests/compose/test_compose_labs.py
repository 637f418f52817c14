"""Lab checks on the compose topology: the same lab definitions, in containers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labs.engine.catalog import all_labs
from tests.conftest import run_lab_cli

pytestmark = pytest.mark.compose


def test_keepalive_502_check_passes_on_compose(lab_env, tmp_path: Path):
    result = run_lab_cli(
        "check", "keepalive-502", "--topology", "compose", "--json",
        "--results-dir", str(tmp_path), env=lab_env, timeout=300,
    )  # fmt: skip
    assert result.stdout.count("\n") == 1, result.stderr
    document = json.loads(result.stdout)
    failed = [c for c in document["checks"] if not c["passed"]]
    assert result.returncode == 0 and document["passed"], failed
    broken = document["variants"]["broken"]
    assert broken["status"].get("502", 0) >= 10
    run_dir = Path(document["results_dir"])
    compose_file = run_dir / "broken" / "compose" / "docker-compose.yml"
    assert "127.0.0.1::8000" in compose_file.read_text(), "replicas published on loopback"
    error_log = (run_dir / "broken" / "nginx" / "error.log").read_text()
    assert "upstream prematurely closed" in error_log or "Connection reset by peer" in error_log
    assert (run_dir / "broken" / "logs" / "api-1.log").is_file(), "container output kept"


def test_retries_check_passes_on_compose(lab_env, tmp_path: Path):
    """A lab with two tiers (gateway -> api) and timed faults through /admin/faults."""
    if "retries" not in {lab.name for lab in all_labs()}:
        pytest.skip("the retries lab is not in this checkout")
    result = run_lab_cli(
        "check", "retries", "--topology", "compose", "--json",
        "--results-dir", str(tmp_path), env=lab_env, timeout=600,
    )  # fmt: skip
    assert result.stdout.count("\n") == 1, result.stderr
    document = json.loads(result.stdout)
    failed = [c for c in document["checks"] if not c["passed"]]
    assert result.returncode == 0 and document["passed"], failed
    for name, variant in document["variants"].items():
        assert len(variant["events"]) == 3, f"{name}: every fault applied"


def test_rate_limit_check_passes_on_compose(lab_env, tmp_path: Path):
    """Redis as a container part, and a `stop` fault through the docker SDK."""
    if "rate-limit" not in {lab.name for lab in all_labs()}:
        pytest.skip("the rate-limit lab is not in this checkout")
    result = run_lab_cli(
        "check", "rate-limit", "--topology", "compose", "--json",
        "--results-dir", str(tmp_path), env=lab_env, timeout=600,
    )  # fmt: skip
    assert result.stdout.count("\n") == 1, result.stderr
    document = json.loads(result.stdout)
    failed = [c for c in document["checks"] if not c["passed"]]
    assert result.returncode == 0 and document["passed"], failed
    (stop,) = document["variants"]["redis-down"]["events"]
    assert stop["action"] == "stop" and stop["processes"] == ["redis"]
