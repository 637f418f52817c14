"""Locust as a master and workers (labs/engine/load/distributed.py): argv, the rate split,
merging the workers' records, and one real distributed run against a tiny server."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import read_requests
from labs.engine.errors import LabError
from labs.engine.load.distributed import (
    MAX_WORKERS,
    LocustRun,
    WorkerContainers,
    check_workers,
    finish_load,
    master_argv,
    merge_worker_files,
    spread,
    start_load,
    users_per_worker,
    web_ui_argv,
    worker_argv,
    worker_dir,
)
from labs.engine.load.driver import LoadFiles
from labs.engine.model.spec import LoadSpec
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.topology.ports import free_ports, is_listening


def test_worker_counts_outside_0_to_max_are_one_line_errors():
    assert check_workers(0) == 0 and check_workers(MAX_WORKERS) == MAX_WORKERS
    for bad in (-1, MAX_WORKERS + 1, 10_000):
        with pytest.raises(LabError, match=f"--locust-workers must be 0-{MAX_WORKERS}, got"):
            check_workers(bad)


def test_a_container_worker_reaches_loopback_and_writes_only_its_own_folder(tmp_path):
    from labs.engine.model.spec import REPO_ROOT

    placement = WorkerContainers("lab-x-broken", {"com.docker.compose.project": "lab-x-broken"})
    worker = ["python", "-m", "locust", "--worker"]
    argv = placement.argv(1, worker, {"LAB_EVENTS_FILE": "/r/w1/requests.csv"}, tmp_path)
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--name") + 1] == "lab-x-broken-locust-worker-2"
    assert argv[argv.index("--network") + 1] == "host"  # the master and nginx on 127.0.0.1
    mounts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-v"]
    assert mounts == [f"{REPO_ROOT}:{REPO_ROOT}:ro", f"{tmp_path}:{tmp_path}"]
    assert "com.docker.compose.project=lab-x-broken" in argv  # the project's down removes it
    assert "LAB_EVENTS_FILE=/r/w1/requests.csv" in argv
    assert argv[-5:] == [placement.image, *worker]


def test_arrival_sources_get_their_users_on_every_worker():
    open_loop = LoadSpec("open_loop.py", users=1, spawn_rate=1, duration_s=30)
    closed = LoadSpec("orders.py", users=20, spawn_rate=20, duration_s=20)
    assert users_per_worker(open_loop) and not users_per_worker(closed)
    files = LoadFiles(Path("/tmp/x"))
    argv = master_argv(open_loop, "http://127.0.0.1:1", files, 3, 5557)
    assert argv[argv.index("-u") + 1] == "3" and argv[argv.index("--expect-workers") + 1] == "3"
    assert argv[argv.index("--master-bind-host") + 1] == "127.0.0.1"
    argv = master_argv(closed, "http://127.0.0.1:1", files, 3, 5557)
    assert argv[argv.index("-u") + 1] == "20"  # closed-loop users are split, not multiplied
    web = web_ui_argv(spread(open_loop, 2), "http://127.0.0.1:1", 5557, 8089)
    assert web[web.index("-u") + 1] == "2" and web[web.index("--web-host") + 1] == "127.0.0.1"
    worker = worker_argv(closed, 5557)
    assert "--worker" in worker and worker[worker.index("--master-host") + 1] == "127.0.0.1"


def write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_worker_records_merge_into_one_file_per_name_in_time_order(tmp_path):
    files = LoadFiles(tmp_path)
    header = ["start_s", "name", "status", "response_ms", "replica"]
    write(worker_dir(files, 0) / "requests.csv", [header, ["3.0", "/w", "200", "1", ""]])
    write(worker_dir(files, 1) / "requests.csv", [header, ["1.0", "/w", "502", "2", "api-1"]])
    write(worker_dir(files, 1) / "logical.csv", [["intended_s"], ["1.5"]])
    merged = merge_worker_files(files, 2)
    assert [p.name for p in merged] == ["logical.csv", "requests.csv"]
    assert [(r.start_s, r.status) for r in read_requests(files.events)] == [(1.0, 502), (3.0, 200)]
    write(worker_dir(files, 1) / "requests.csv", [["other"], ["1"]])
    with pytest.raises(LabError, match="worker 1's requests.csv has other columns"):
        merge_worker_files(files, 2)


@pytest.fixture
def http_server():
    port = free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not is_listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=5)


def run_load(tmp_path: Path, host: str, workers: int) -> list[float]:
    load = LoadSpec(
        "open_loop.py", 1, 1, 20, env={"LAB_RATE": "80", "LAB_ARRIVALS_S": "3", "LAB_PATH": "/"}
    )
    files = LoadFiles(tmp_path / f"w{workers}")
    group = ProcessGroup(f"test-{workers}", files.directory / "logs")
    try:
        run = start_load(group, load, host, files, workers)
        deadline = time.monotonic() + 40
        while run.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.returncode == 0, run.log_tail()
        asyncio.run(finish_load(group, run))
        assert not any(w.alive() for w in run.workers)
    finally:
        group.stop_all()
    return [r.start_s for r in read_requests(files.events)]


def test_two_workers_offer_the_same_total_open_loop_rate_as_one_process(tmp_path, http_server):
    single = run_load(tmp_path, http_server, 0)
    split = run_load(tmp_path, http_server, 2)
    # 80/s for 3 s = 240 expected arrivals (Poisson: sd ~15.5); one arrival source per
    # worker at 40/s, none handed on when a worker's schedule ends
    for starts in (single, split):
        assert 180 <= len(starts) <= 300, len(starts)
        assert max(starts) - min(starts) < 3.5
    assert starts == sorted(starts)
    per_worker = [
        len(read_requests(worker_dir(LoadFiles(tmp_path / "w2"), i) / "requests.csv"))
        for i in range(2)
    ]
    assert all(80 <= n <= 160 for n in per_worker), per_worker


def test_a_worker_that_wrote_no_records_is_an_error_not_a_short_count(tmp_path):
    files = LoadFiles(tmp_path)
    group = ProcessGroup("test-missing", tmp_path / "logs")
    quiet = [sys.executable, "-c", "pass"]
    run = LocustRun(
        group.start("master", quiet),
        (group.start("locust-worker-1", quiet), group.start("locust-worker-2", quiet)),
        files,
    )
    write(worker_dir(files, 0) / "requests.csv", [["start_s"], ["1.0"]])
    with pytest.raises(LabError, match="locust worker 2 wrote no records"):
        asyncio.run(finish_load(group, run))
    group.stop_all()
