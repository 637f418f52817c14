"""Locust as a subprocess: start it headless, watch its progress, read its records.

Locust monkey-patches the interpreter with gevent on import, so it never runs
inside the engine's (asyncio) process.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.processes import Child, ProcessGroup
from labs.engine.spec import LoadSpec

STOP_TIMEOUT_S = 5


@dataclass(frozen=True)
class LoadFiles:
    directory: Path

    @property
    def events(self) -> Path:
        return self.directory / "requests.csv"

    @property
    def csv_prefix(self) -> Path:
        return self.directory / "locust"

    @property
    def stats_csv(self) -> Path:
        return self.directory / "locust_stats.csv"

    @property
    def json(self) -> Path:
        return self.directory / "locust.json"


def locust_argv(load: LoadSpec, host: str, files: LoadFiles) -> list[str]:
    if not load.path.is_file():
        raise LabError(f"locustfile not found: {load.path}")
    return [
        sys.executable, "-m", "locust",
        "-f", str(load.path),
        "--headless",
        "-u", str(load.users),
        "-r", str(load.spawn_rate),
        "-t", f"{load.duration_s:g}s",
        "--host", host,
        "--only-summary",
        "--csv", str(files.csv_prefix),
        "--csv-full-history",
        "--json-file", str(files.json.with_suffix("")),
        "--exit-code-on-error", "0",
        "--stop-timeout", str(STOP_TIMEOUT_S),
        "--loglevel", "WARNING",
    ]  # fmt: skip


def start_locust(group: ProcessGroup, load: LoadSpec, host: str, files: LoadFiles) -> Child:
    files.directory.mkdir(parents=True, exist_ok=True)
    env = {**load.env, "LAB_EVENTS_FILE": str(files.events)}
    argv = locust_argv(load, host, files)
    return group.start("locust", argv, env=env, log_dir=files.directory / "logs")


@dataclass(frozen=True)
class Progress:
    requests: int
    failures: int


def read_progress(files: LoadFiles) -> Progress | None:
    """Locust's running totals (its stats CSV, rewritten every second), if any yet."""
    try:
        with files.stats_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return Progress(int(row["Request Count"]), int(row["Failure Count"]))
    except (OSError, ValueError, KeyError):
        return None
    return None
