"""Clean up after runs whose owner died: their processes (by LAB_RUN_ID), temp
prefixes and Compose projects (containers do not die with their runner)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from labs.engine.runtime.processes import kill_pids, pid_alive, processes_with_run_id
from labs.engine.runtime.state import read_json, runs_dir
from labs.engine.topology.dockerenv import sweep_compose  # imports docker only when needed


def cleanup_run(run_id: str) -> int:
    """Stop every process of `run_id`, remove its temp prefixes and its Compose projects
    (containers do not die with their runner); return how many processes stopped."""
    pids = processes_with_run_id(run_id)
    kill_pids(pids)
    sweep_compose(run_id)
    for prefix in Path(tempfile.gettempdir()).glob(f"lab-{run_id}-*"):
        shutil.rmtree(prefix, ignore_errors=True)
    return len(pids)


def sweep_stale_runs() -> list[str]:
    """Clean up after runs whose owner died; return their ids."""
    cleaned = []
    for path in sorted(runs_dir().glob("*.json")):
        record = read_json(path)
        if record is None or pid_alive(int(record.get("pid", 0))):
            continue
        cleanup_run(record["run_id"])
        path.unlink(missing_ok=True)
        cleaned.append(record["run_id"])
    sweep_compose()  # Compose projects whose owner died without a run file (`lab up`)
    return cleaned
