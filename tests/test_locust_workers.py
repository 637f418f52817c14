"""`--locust-workers N` end to end: a lab's check with a Locust master and workers, the
web-UI master `lab up` starts, and bad counts refused in one line."""

from __future__ import annotations

import csv
import json
import urllib.request
from pathlib import Path

import pytest

from labs.engine.runtime.processes import processes_with_run_id
from tests.conftest import passed_check, run_lab_cli


@pytest.mark.parametrize(
    "command", [["run", "idempotency"], ["check", "idempotency"], ["up", "idempotency"]]
)
@pytest.mark.parametrize("count", ["-1", "33", "two"])
def test_bad_worker_counts_are_one_line_errors(lab_env, command, count):
    result = run_lab_cli(*command, "--locust-workers", count, env=lab_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--locust-workers" in result.stderr
    assert "Traceback" not in result.stderr


def rows(path: Path) -> int:
    with path.open(newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


@pytest.mark.lab
def test_a_lab_check_passes_with_two_locust_workers(lab_env, tmp_path):
    document = passed_check(
        "idempotency", lab_env, tmp_path / "results", 180, "--locust-workers", "2"
    )
    for name in document["variants"]:
        folder = Path(document["results_dir"]) / name
        for merged in ("requests.csv", "intents.csv"):
            each = [rows(folder / "workers" / f"w{i}" / merged) for i in range(2)]
            assert all(n > 0 for n in each), (name, merged, each)  # both workers drove load
            assert rows(folder / merged) == sum(each)


def test_up_starts_a_web_ui_master_and_workers_that_down_stops(lab_env):
    up = run_lab_cli("up", "idempotency", "--locust-workers", "2", env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
        locust = status["locust"]
        assert locust["workers"] == 2 and locust["web_ui"].startswith("http://127.0.0.1:")
        assert locust["web_ui"] in up.stdout and "--worker --master-port" in up.stdout
        names = [
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            for pid in processes_with_run_id(status["run_id"])
        ]
        roles = [word for n in names for word in n.split() if word in ("--master", "--worker")]
        assert sorted(roles) == ["--master", "--worker", "--worker"], names
        with urllib.request.urlopen(locust["web_ui"], timeout=10) as response:
            assert response.status == 200
    finally:
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert processes_with_run_id(status["run_id"]) == []
