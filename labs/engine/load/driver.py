"""Locust as a subprocess: start it headless, watch its progress, read its records.

Locust monkey-patches the interpreter with gevent on import, so it never runs
inside the engine's (asyncio) process.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.spec import LoadSpec
from labs.engine.runtime.processes import Child, ProcessGroup

STOP_TIMEOUT_S = 5
CLIENT_RETRY_SUFFIX = " (client retry)"
"""A locustfile records a client-side retry under its request's name plus this suffix
("/work (client retry)", loadtests/steady_users.py and orders.py): Locust counts every
attempt, the labs' tables count user requests (the first attempts)."""


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
    def failures_csv(self) -> Path:
        return self.directory / "locust_failures.csv"

    @property
    def history_csv(self) -> Path:
        return self.directory / "locust_stats_history.csv"

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
        "-t", f"{round(load.duration_s)}s",
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
    errors: dict[str, int] = field(default_factory=dict)
    """Failures by status code ("502": 12); "no response" for connection errors."""
    p99_ms: float | None = None
    """Locust's current p99 (its recent window), None before the first response."""
    client_retries: int = 0
    """Of `requests`, the attempts recorded as client retries (CLIENT_RETRY_SUFFIX);
    `requests - client_retries` are user requests, what a lab's table counts."""


_FAILURE_CODE = re.compile(r"code=(\d{3})|^HTTPError\('(\d{3}) ")


def read_progress(files: LoadFiles) -> Progress | None:
    """Locust's running totals (its CSVs, rewritten every second), if any yet."""
    try:
        with files.stats_csv.open(newline="") as handle:
            stats = list(csv.DictReader(handle))
        rows = [row for row in stats if row.get("Name") == "Aggregated"]
        if not rows:
            return None
        retries = sum(
            int(row["Request Count"])
            for row in stats
            if (row.get("Name") or "").endswith(CLIENT_RETRY_SUFFIX)
        )
        totals = Progress(int(rows[0]["Request Count"]), int(rows[0]["Failure Count"]))
    except (OSError, ValueError, KeyError):
        return None
    return replace(
        totals,
        errors=_failures_by_code(files),
        p99_ms=_current_p99(files),
        client_retries=retries,
    )


def _failures_by_code(files: LoadFiles) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        with files.failures_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                match = _FAILURE_CODE.search(row.get("Error", ""))
                code = (match[1] or match[2]) if match else "no response"
                counts[code] = counts.get(code, 0) + int(row.get("Occurrences") or 0)
    except (OSError, ValueError):
        return {}
    return dict(sorted(counts.items()))


def _current_p99(files: LoadFiles) -> float | None:
    try:
        with files.history_csv.open(newline="") as handle:
            last = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
        return float(last[-1]["99%"]) if last else None
    except (OSError, ValueError, KeyError):
        return None
