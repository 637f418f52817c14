"""What is running: one file per live run, and one for the topology `lab up` keeps.

A run that dies without cleaning up (SIGKILL, power cut) leaves its file behind;
the next `lab run`, `lab up` or `lab down` finds it and stops what it left, by
the LAB_RUN_ID every child carries in its environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from labs.engine.runtime.processes import kill_pids, pid_alive, processes_with_run_id


def state_dir() -> Path:
    return Path(os.environ.get("LAB_STATE_DIR", Path.cwd() / ".lab"))


def runs_dir() -> Path:
    return state_dir() / "runs"


def up_file() -> Path:
    return state_dir() / "up.json"


def up_log(run_id: str) -> Path:
    """The output of the supervisor process behind `lab up` (its start-up errors)."""
    return state_dir() / "up" / f"{run_id}.log"


def new_run_id(lab: str) -> str:
    return f"{lab}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def registered_run(run_id: str, lab: str, kind: str) -> Iterator[None]:
    path = runs_dir() / f"{run_id}.json"
    write_json_atomic(path, {"run_id": run_id, "pid": os.getpid(), "lab": lab, "kind": kind})
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def cleanup_run(run_id: str) -> int:
    """Stop every process of `run_id`, remove its temp prefixes and its Compose projects
    (containers do not die with their runner); return how many processes stopped."""
    from labs.engine.topology.dockerenv import (
        sweep_compose,  # imports docker only when markers exist
    )

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
    from labs.engine.topology.dockerenv import sweep_compose

    sweep_compose()  # Compose projects whose owner died without a run file (`lab up`)
    return cleaned
