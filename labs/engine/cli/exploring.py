"""Exploring by hand: `lab up` (a supervisor keeps a variant's topology running),
`lab status`, `lab down`. `lab fault` is labs.engine.cli.faults."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from labs.engine.cli.output import out
from labs.engine.errors import LabError
from labs.engine.model.catalog import get_lab
from labs.engine.runtime.processes import pid_alive
from labs.engine.runtime.state import (
    new_run_id,
    read_json,
    state_dir,
    up_file,
    up_log,
)
from labs.engine.runtime.sweep import cleanup_run, sweep_stale_runs
from labs.engine.topology.base import preflight
from labs.engine.topology.ports import ensure_port_free

UP_TIMEOUT_S = 30.0
UP_TIMEOUT_COMPOSE_S = 120.0
"""Compose: containers start, then every replica must answer its health check."""


def cmd_up(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    variant = lab.variant(args.variant) if args.variant else lab.variants[0]
    preflight(args.topology)
    sweep_stale_runs()
    current = read_json(up_file())
    if current and pid_alive(int(current.get("pid", 0))):
        raise LabError(f"{current['lab']}/{current['variant']} is already up; run `lab down` first")
    if current:
        cleanup_run(current["run_id"])
        up_file().unlink(missing_ok=True)
    if args.port is not None:
        ensure_port_free(args.port)
    run_id = new_run_id(lab.name)
    argv = [sys.executable, "-m", "labs.engine.runtime.supervisor", "--lab", lab.name,
            "--variant", variant.name, "--run-id", run_id]  # fmt: skip
    if args.port is not None:
        argv += ["--port", str(args.port)]
    argv += ["--topology", args.topology]
    if workers := getattr(args, "locust_workers", 0):
        argv += ["--locust-workers", str(workers)]
    log = up_log(run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        supervisor = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "LAB_RUN_ID": run_id},
        )  # fmt: skip
    timeout = UP_TIMEOUT_COMPOSE_S if args.topology == "compose" else UP_TIMEOUT_S
    record = _wait_until_up(supervisor, run_id, timeout)
    endpoints = record["endpoints"]
    load = variant.load
    env = " ".join(f"{key}={value}" for key, value in load.env.items())
    out.print(f"[bold]{lab.name}[/] / [bold]{variant.name}[/] is up: {variant.summary}")
    out.print(f"  nginx:  {endpoints['nginx']}   (try: curl -si {endpoints['nginx']}/work)")
    if record.get("dashboard"):
        out.print(f"  live:   {record['dashboard']}   (dashboard: charts, topology, faults)",
                  highlight=False)  # fmt: skip
    fault_switches = {s.name for s in variant.services if s.module == "services.api"}
    for name, urls in endpoints["services"].items():
        faults = f"   (faults: GET/PUT {urls[0]}/admin/faults)" if name in fault_switches else ""
        out.print(f"  {name}:  {', '.join(urls)}{faults}")
    if locust := record.get("locust"):
        out.print(f"  load:   {locust['web_ui']}   (Locust web UI: a master and "
                  f"{locust['workers']} workers, running)", highlight=False)  # fmt: skip
        worker = f"{sys.executable} -m locust -f {load.path} --worker"
        out.print(f"    one more worker: {env} {worker} --master-port {locust['master_port']}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    else:
        out.print("  load (Locust web UI on http://127.0.0.1:8089):")
        out.print(
            f"    {env} {sys.executable} -m locust -f {load.path} --host {endpoints['nginx']} "
            f"-u {load.users} -r {load.spawn_rate:g} --web-host 127.0.0.1",
            highlight=False,
            soft_wrap=True,
        )
    if fault_switches:
        example = sorted(fault_switches)[0]
        out.print(f"  faults: lab fault {example} latency_ms=200 | lab fault {example}-1 --kill "
                  f"| lab fault --clear", highlight=False)  # fmt: skip
    out.print(f"  logs:   {record['logs']} (each file: lab status)\n  stop:   lab down",
              highlight=False)  # fmt: skip
    return 0


def _wait_until_up(
    supervisor: subprocess.Popen[bytes], run_id: str, timeout_s: float = UP_TIMEOUT_S
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = read_json(up_file())
        if record and record.get("run_id") == run_id:
            if record["status"] == "ready":
                return record
            if record["status"] == "failed":
                supervisor.wait(timeout=15)
                up_file().unlink(missing_ok=True)
                raise LabError(record["error"])
        if supervisor.poll() is not None:
            cleanup_run(run_id)
            raise LabError(
                f"lab up failed to start (exit {supervisor.returncode}); see {state_dir()}/up"
            )
        time.sleep(0.05)
    _stop_supervisor(supervisor.pid, run_id)
    raise LabError(f"topology not ready after {timeout_s:g} s; stopped it")


def _stop_supervisor(pid: int, run_id: str) -> None:
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    cleanup_run(run_id)


def cmd_status(args: argparse.Namespace) -> int:
    record = read_json(up_file())
    alive = bool(record) and pid_alive(int(record.get("pid", 0)))
    if args.log:
        return _print_log_path(record if alive else None, args.log)
    if args.json:
        print(json.dumps({"up": alive, **(record or {})} if alive else {"up": False}))
        return 0
    if not alive:
        out.print("nothing is up (start a lab with `lab up LAB --variant V`)")
        return 0
    out.print(
        f"[bold]{record['lab']}[/] / [bold]{record['variant']}[/]: {record['status']} "
        f"since {record['started_at']}"
    )
    endpoints = record.get("endpoints", {})
    for name, url in [("nginx", endpoints.get("nginx")), ("live", record.get("dashboard"))] + [
        (name, ", ".join(urls)) for name, urls in endpoints.get("services", {}).items()
    ] + list(endpoints.get("parts", {}).items()):  # fmt: skip
        if url:
            out.print(f"  {name}: {url}", highlight=False)
    if files := record.get("log_files"):
        out.print('  logs (live; `tail -f "$(lab status --log NAME)"` follows one):')
        width = max(len(name) for name in files)
        for name, path in files.items():
            out.print(f"    {name + ':':<{width + 1}} {path}", highlight=False, soft_wrap=True)
    return 0


def _print_log_path(record: dict | None, name: str) -> int:
    """`lab status --log NAME`: the path alone, for `tail -f "$(lab status --log ...)"`."""
    if record is None:
        raise LabError("nothing is up (start a lab with `lab up LAB --variant V`)")
    files = record.get("log_files") or {}
    if name not in files:
        raise LabError(f"no log {name!r} (known: {', '.join(files) or 'none yet'})")
    print(files[name])
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    cleaned = sweep_stale_runs()
    record = read_json(up_file())
    if record:
        _stop_supervisor(int(record.get("pid", 0)), record["run_id"])
        up_file().unlink(missing_ok=True)
        out.print(f"stopped {record['lab']}/{record['variant']}")
    elif not cleaned:
        out.print("nothing was up")
    for run_id in cleaned:
        out.print(f"cleaned up after interrupted run {run_id}")
    return 0
