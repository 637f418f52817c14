"""Lab checks on the compose topology: the same lab definitions, in containers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from labs.engine.model.catalog import all_labs
from tests.conftest import passed_check
from tests.test_locust_workers import rows

pytestmark = pytest.mark.compose


SPECIFIC = {"keepalive-502", "retries", "rate-limit"}
"""Labs whose compose test below also asserts what is special about them."""


@pytest.mark.parametrize("lab", sorted(lab.name for lab in all_labs() if lab.name not in SPECIFIC))
def test_every_lab_passes_and_proves_its_checks_on_compose(lab, lab_env, tmp_path: Path):
    passed_check(lab, lab_env, tmp_path, 600, "--topology", "compose")


def test_keepalive_502_check_passes_on_compose(lab_env, tmp_path: Path):
    document = passed_check("keepalive-502", lab_env, tmp_path, 300, "--topology", "compose")
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
    document = passed_check("retries", lab_env, tmp_path, 600, "--topology", "compose")
    for name, variant in document["variants"].items():
        assert len(variant["events"]) == 3, f"{name}: every fault applied"


def test_rate_limit_check_passes_on_compose(lab_env, tmp_path: Path):
    """Redis as a container part, and a `stop` fault through the docker SDK."""
    if "rate-limit" not in {lab.name for lab in all_labs()}:
        pytest.skip("the rate-limit lab is not in this checkout")
    document = passed_check("rate-limit", lab_env, tmp_path, 600, "--topology", "compose")
    (stop,) = document["variants"]["redis-down"]["events"]
    assert stop["action"] == "stop" and stop["processes"] == ["redis"]


def test_locust_workers_run_as_containers_on_compose(lab_env, tmp_path: Path, docker_client):
    """`--locust-workers 2` on compose: each worker is a container (Docker's own event
    stream says so; watched live, as dockerd keeps only its last few hundred events),
    both drive load, their records are merged, and none is left behind."""
    stream = docker_client.events(decode=True, filters={"type": "container", "event": "start"})
    names: list[str] = []
    watcher = threading.Thread(
        target=lambda: names.extend(e["Actor"]["Attributes"].get("name", "") for e in stream),
        daemon=True,
    )
    watcher.start()
    try:
        document = passed_check(
            "idempotency", lab_env, tmp_path, 600, "--topology", "compose", "--locust-workers", "2"
        )
    finally:
        stream.close()
    workers = sorted(n for n in names if "-locust-worker-" in n)
    assert len(workers) == 2 * len(document["variants"]), workers
    for name in document["variants"]:
        folder = Path(document["results_dir"]) / name
        each = [rows(folder / "workers" / f"w{i}" / "requests.csv") for i in range(2)]
        assert all(n > 0 for n in each), (name, each)
        assert rows(folder / "requests.csv") == sum(each)
    left = docker_client.containers.list(all=True, filters={"name": "locust-worker"})
    assert not left, [c.name for c in left]
