"""Locust as a master and N worker processes (`--locust-workers N`), or one process (N = 0).

The master (headless, `--master`) owns the run: the user count, the run time, the
stats CSVs and JSON the progress line and reports read. Each worker (`--worker`) runs
users and records its own requests: its LAB_EVENTS_FILE lies in its own folder
(`workers/w<i>/requests.csv`), so whatever a locustfile writes beside it (logical.csv,
intents.csv) is per worker too. When the load is over, `finish_load` waits for the
workers and merges every worker's CSV of one name into the load folder, rows in time
order, so the engine reads the same files as from a single process.

A locustfile whose users are arrival sources (each one a whole schedule, e.g.
loadtests/open_loop.py) declares `USERS_PER_WORKER = True`: every worker then gets the
lab's users, and the locustfile divides its rate by LAB_LOCUST_WORKERS (and offsets its
seed by LAB_LOCUST_WORKER), so the total offered rate is the same as in one process.

On the compose topology each worker is a container (`WorkerContainers`, image
lab-locust): on the host's network, so it reaches the master and nginx on 127.0.0.1
like a local worker, with the repository mounted read-only and its own folder
writable at the same paths, and labelled with the variant's Compose project, so the
project's `down` and the engine's sweep remove any container a crash left behind.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.load.driver import LoadFiles, locust_argv, start_locust
from labs.engine.model.spec import REPO_ROOT, LoadSpec
from labs.engine.runtime.processes import Child, ProcessGroup
from labs.engine.topology.ports import HOST, free_ports

MAX_WORKERS = 32
"""More Locust workers than this on one machine only adds CPU contention."""
WORKERS_ENV = "LAB_LOCUST_WORKERS"
WORKER_ENV = "LAB_LOCUST_WORKER"
"""This worker's index, 0 .. N-1 (known at start, unlike Locust's own worker_index)."""
USERS_PER_WORKER_FLAG = "USERS_PER_WORKER"
WORKERS_CONNECT_S = 30
"""How long the master waits for its workers to connect before it gives up."""
SPAWN_MARK = "Sending spawn jobs"
"""What the master logs (at INFO) when its workers are all connected and get their users."""
WORKER_EXIT_S = 10.0
"""How long the workers get, after the master exits, to write their records."""


def check_workers(count: int) -> int:
    """A valid worker count, else a one-line LabError."""
    if not 0 <= count <= MAX_WORKERS:
        raise LabError(f"--locust-workers must be 0-{MAX_WORKERS}, got {count}")
    return count


@dataclass(frozen=True)
class LocustRun:
    """The Locust processes of one variant: the master (or the single process) and
    its workers."""

    main: Child
    workers: tuple[Child, ...] = ()
    files: LoadFiles | None = None

    def alive(self) -> bool:
        return self.main.alive()

    @property
    def returncode(self) -> int | None:
        return self.main.process.returncode

    def log_tail(self, lines: int = 5) -> str:
        tails = [child.log_tail(lines) for child in (self.main, *self.workers)]
        return " | ".join(tail for tail in tails if tail)


def users_per_worker(load: LoadSpec) -> bool:
    """True when the locustfile sets `USERS_PER_WORKER = True` at its top level (read
    without importing it: importing Locust monkey-patches the interpreter)."""
    try:
        tree = ast.parse(load.path.read_text())
    except (OSError, SyntaxError):
        return False
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == USERS_PER_WORKER_FLAG for t in node.targets)
        and isinstance(node.value, ast.Constant)
        and node.value.value is True
        for node in tree.body
    )


def spread(load: LoadSpec, workers: int) -> LoadSpec:
    """The load as the master runs it: arrival sources multiplied by the workers (each
    worker gets the lab's), other users split across them."""
    if not users_per_worker(load):
        return load
    return replace(load, users=load.users * workers, spawn_rate=load.spawn_rate * workers)


def master_argv(load: LoadSpec, host: str, files: LoadFiles, workers: int, port: int) -> list[str]:
    argv = locust_argv(spread(load, workers), host, files)
    argv[argv.index("--loglevel") + 1] = "INFO"  # its log says when the users are sent
    return argv + [
        "--master", "--master-bind-host", HOST, "--master-bind-port", str(port),
        "--expect-workers", str(workers),
        "--expect-workers-max-wait", str(WORKERS_CONNECT_S),
    ]  # fmt: skip


def worker_argv(load: LoadSpec, port: int, python: str = sys.executable) -> list[str]:
    return [
        python, "-m", "locust", "-f", str(load.path),
        "--worker", "--master-host", HOST, "--master-port", str(port),
        "--headless", "--loglevel", "WARNING",
    ]  # fmt: skip


LOCUST_IMAGE = os.environ.get("LAB_LOCUST_IMAGE", "lab-locust:latest")


@dataclass(frozen=True)
class WorkerContainers:
    """Run each worker in a container (the compose topology's workers)."""

    name_prefix: str
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = LOCUST_IMAGE

    def argv(
        self, index: int, worker: list[str], env: Mapping[str, str], folder: Path | None = None
    ) -> list[str]:
        """`docker run` for one worker: `worker` is its argv with `python` first; `folder`
        (its records) is the one path it may write."""
        argv = [
            "docker", "run", "--rm", "--name", f"{self.name_prefix}-locust-worker-{index + 1}",
            "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}",
            "-v", f"{REPO_ROOT}:{REPO_ROOT}:ro", "-w", str(REPO_ROOT),
            "-e", f"PYTHONPATH={REPO_ROOT}",
        ]  # fmt: skip
        if folder is not None:
            argv += ["-v", f"{folder}:{folder}"]
        argv += [arg for key, value in self.labels.items() for arg in ("--label", f"{key}={value}")]
        argv += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        return [*argv, self.image, *worker]


def worker_command(
    load: LoadSpec,
    port: int,
    index: int,
    env: Mapping[str, str],
    containers: WorkerContainers | None,
    folder: Path | None = None,
) -> list[str]:
    """Worker `index`'s command: a local process, or `docker run` of one in `containers`."""
    if containers is None:
        return worker_argv(load, port)
    return containers.argv(index, worker_argv(load, port, "python"), env, folder)


def worker_dir(files: LoadFiles, index: int) -> Path:
    return files.directory / "workers" / f"w{index}"


def start_load(
    group: ProcessGroup,
    load: LoadSpec,
    host: str,
    files: LoadFiles,
    workers: int = 0,
    containers: WorkerContainers | None = None,
) -> LocustRun:
    """Start Locust: one process (workers = 0, as always), or a master and `workers`
    workers (local processes, or `containers`), all children of `group` (stopped with
    it, Ctrl-C included)."""
    check_workers(workers)
    if workers == 0:
        return LocustRun(start_locust(group, load, host, files))
    files.directory.mkdir(parents=True, exist_ok=True)
    logs = files.directory / "logs"
    port = free_ports(1)[0]
    shared = {**load.env, WORKERS_ENV: str(workers)}
    master = group.start(
        "locust-master", master_argv(load, host, files, workers, port), env=shared, log_dir=logs
    )
    started = []
    for index in range(workers):
        folder = worker_dir(files, index)
        folder.mkdir(parents=True, exist_ok=True)
        env = {**shared, WORKER_ENV: str(index), "LAB_EVENTS_FILE": str(folder / files.events.name)}
        name = f"locust-worker-{index + 1}"
        argv = worker_command(load, port, index, env, containers, folder)
        started.append(group.start(name, argv, env=env, log_dir=logs))
    return LocustRun(master, tuple(started), files)


async def wait_until_spawning(run: LocustRun) -> None:
    """With workers: return once the master sends the workers their users (all of them
    connected; its run time starts then), so that a lab's faults, timed from here, see
    as much load before them as with one process (the master waits for its workers in
    1 s steps). One process: at once."""
    if not run.workers:
        return
    deadline = time.monotonic() + WORKERS_CONNECT_S + 5
    while run.alive() and time.monotonic() < deadline:
        try:
            if SPAWN_MARK in run.main.log_path.read_text(errors="replace"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)


async def finish_load(group: ProcessGroup, run: LocustRun) -> None:
    """After the master exits: let the workers write their records (bounded), stop any
    that hang, and merge their CSVs into the load folder."""
    if not run.workers or run.files is None:
        return
    deadline = time.monotonic() + WORKER_EXIT_S
    while any(w.alive() for w in run.workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for worker in run.workers:
        if worker.alive():
            group.stop(worker, grace_s=1.0)
    recorded = [
        (worker_dir(run.files, i) / run.files.events.name).is_file()
        for i in range(len(run.workers))
    ]
    if any(recorded) and not all(recorded):
        missing = recorded.index(False)
        raise LabError(
            f"locust worker {missing + 1} wrote no records: {run.workers[missing].log_tail(3)}"
        )
    merge_worker_files(run.files, len(run.workers))


def merge_worker_files(files: LoadFiles, workers: int) -> list[Path]:
    """Every CSV the workers wrote, one file per name in the load folder, rows sorted by
    their first column (a time in every recorder file). Returns the merged files."""
    names = sorted({p.name for i in range(workers) for p in worker_dir(files, i).glob("*.csv")})
    merged = []
    for name in names:
        header: list[str] | None = None
        rows: list[list[str]] = []
        for index in range(workers):
            path = worker_dir(files, index) / name
            if not path.is_file():
                continue
            with path.open(newline="") as handle:
                reader = csv.reader(handle)
                first = next(reader, None)
                if first is None:
                    continue
                if header is not None and first != header:
                    raise LabError(f"worker {index}'s {name} has other columns than worker 0's")
                header = first
                rows.extend(reader)
        if header is None:
            continue
        target = files.directory / name
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(sorted(rows, key=_time_key))
        merged.append(target)
    return merged


def _time_key(row: list[str]) -> float:
    try:
        return float(row[0])
    except (IndexError, ValueError):
        return float("inf")


def web_ui_argv(load: LoadSpec, host: str, port: int, web_port: int) -> list[str]:
    """A master with Locust's web UI (`lab up --locust-workers N`): the learner starts
    and stops the load there; the workers connect to `port`."""
    return [
        sys.executable, "-m", "locust", "-f", str(load.path), "--host", host,
        "-u", str(load.users), "-r", f"{load.spawn_rate:g}",
        "--master", "--master-bind-host", HOST, "--master-bind-port", str(port),
        "--web-host", HOST, "--web-port", str(web_port), "--loglevel", "WARNING",
    ]  # fmt: skip


def start_web_ui(
    group: ProcessGroup,
    load: LoadSpec,
    host: str,
    workers: int,
    log_dir: Path,
    containers: WorkerContainers | None = None,
) -> tuple[str, int]:
    """Start a web-UI master and `workers` workers (children of `group`); returns the
    web UI's URL and the port workers on other machines connect to (--master-port)."""
    check_workers(workers)
    port, web_port = free_ports(2)
    env = {**load.env, WORKERS_ENV: str(workers)}
    argv = web_ui_argv(spread(load, workers), host, port, web_port)
    group.start("locust-master", argv, env=env, log_dir=log_dir)
    for index in range(workers):
        worker_env = {**env, WORKER_ENV: str(index)}
        argv = worker_command(load, port, index, worker_env, containers)
        group.start(f"locust-worker-{index + 1}", argv, env=worker_env, log_dir=log_dir)
    return f"http://{HOST}:{web_port}", port
