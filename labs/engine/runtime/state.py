"""What is running: one file per live run, and one for the topology `lab up` keeps.

A run that dies without cleaning up (SIGKILL, power cut) leaves its file behind;
the next `lab run`, `lab up` or `lab down` finds it and stops what it left, by
the LAB_RUN_ID every child carries in its environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path


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


def write_json_atomic(path: Path, data: object, private: bool = False) -> None:
    """Write `data` whole or not at all; `private`: readable by this user only (the file
    holds a secret, e.g. the control token of `lab up`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
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
