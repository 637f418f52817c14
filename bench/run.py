"""`make bench`: how fast the lab drives load and what its parts cost.

Every ratio compares two measurements taken side by side in this one run, on
this machine, so they mean something where absolute numbers do not. Writes
bench/results.md and prints the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labs.engine import nginx
from labs.engine.errors import LabError
from labs.engine.local import LocalTopology
from labs.engine.ports import HOST, free_ports
from labs.engine.processes import ProcessGroup
from labs.engine.signals import interrupts_raise, run_interruptible
from labs.engine.spec import (
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = "trivial.py"
CONNECTIONS = 64


@dataclass
class Row:
    measure: str
    value: str
    note: str = ""


def wrk(url: str, seconds: float) -> float:
    """Requests/s that wrk (2 threads, 64 connections) gets from `url`."""
    binary = shutil.which("wrk")
    if not binary:
        raise LabError("wrk not found; install it: apt-get install wrk")
    out = subprocess.run(
        [binary, "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise LabError(f"could not read wrk's output: {out[-200:]}")
    return float(match[1])


def locust(url: str, seconds: float, processes: int, workdir: Path) -> float:
    """Requests/s that headless Locust (FastHttpUser) drives with `processes` workers."""
    report = workdir / f"locust-{processes}"
    argv = [
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / TRIVIAL),
        "--headless", "-u", str(CONNECTIONS), "-r", str(CONNECTIONS), "-t", f"{seconds:g}s",
        "--host", url, "--only-summary", "--json-file", str(report),
        "--exit-code-on-error", "0", "--loglevel", "ERROR",
    ]  # fmt: skip
    if processes > 1:
        argv += ["--processes", str(processes)]
    subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=True, cwd=REPO)
    stats = json.loads(report.with_suffix(".json").read_text())
    requests = sum(entry["num_requests"] for entry in stats)
    started = min(entry["start_time"] for entry in stats)
    ended = max(entry["last_request_timestamp"] for entry in stats)
    return requests / max(ended - started, 1e-9)


def nginx_return_200(group: ProcessGroup, workdir: Path) -> str:
    """An nginx that answers every request itself: the proxy's own ceiling."""
    port = free_ports(1)[0]
    layout = nginx.NginxLayout(workdir / "nginx-return-200")
    layout.prefix.mkdir(parents=True)
    layout.temp.mkdir()
    layout.conf.write_text(
        f"worker_processes 1;\npid {layout.pid};\nerror_log {layout.error_log} error;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {layout.temp}; "
        f"server {{ listen {HOST}:{port}; location / {{ return 200 'ok'; }} }} }}\n"
    )
    group.start("nginx-return-200", nginx.nginx_argv(layout), log_dir=workdir)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 10
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", url]).returncode != 0:
        if time.monotonic() > deadline:
            raise LabError("nginx (return 200) did not start")
        time.sleep(0.05)
    return url


def proxy_lab() -> tuple[Lab, Variant]:
    """nginx -> one api replica with a keep-alive pool: the path every lab drives."""
    variant = Variant(
        name="bench",
        summary="nginx -> api, keep-alive pool",
        nginx=NginxSpec(upstream=Upstream(keepalive=CONNECTIONS)),
        services=(ServiceSpec("api", args={"keepalive-timeout": 75}),),
        load=LoadSpec(TRIVIAL, users=CONNECTIONS, spawn_rate=CONNECTIONS, duration_s=10),
    )
    lab = Lab("bench", "bench", "", REPO / "README.md", (variant,), ())
    return lab, variant


def time_lab_up(runs: int, workdir: Path) -> list[float]:
    """Wall time of `lab up keepalive-502` (it returns once every part is healthy)."""
    env = {**os.environ, "LAB_STATE_DIR": str(workdir / "state")}
    lab = [sys.executable, "-m", "labs.engine.cli"]
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([*lab, "up", "keepalive-502"], env=env, cwd=REPO, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        times.append(time.monotonic() - started)
        subprocess.run([*lab, "down"], env=env, cwd=REPO, check=True, capture_output=True)
    return times


def time_check_all(workdir: Path) -> tuple[float, bool]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "labs.engine.cli", "check", "--all",
         "--results-dir", str(workdir / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "LAB_STATE_DIR": str(workdir / "state")},
    )  # fmt: skip
    return time.monotonic() - started, result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="length of each load run")
    parser.add_argument("--skip-check-all", action="store_true", help="skip `lab check --all`")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results.md")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    group = ProcessGroup(f"bench-{int(time.time())}", workdir)
    try:
        with interrupts_raise():
            lab, variant = proxy_lab()
            topology = LocalTopology(lab, variant, group, workdir / "proxy")
            endpoints = run_interruptible(topology.start())
            url = f"{endpoints.nginx_url}/work"
            print(f"load ceiling through nginx -> api ({args.seconds:g} s each) ...", flush=True)
            wrk_rps = wrk(url, args.seconds)
            locust_rps = {n: locust(endpoints.nginx_url, args.seconds, n, workdir) for n in (1, 2)}
            best = max(locust_rps, key=locust_rps.get)
            topology.stop()
            reference = wrk(nginx_return_200(group, workdir), args.seconds)
            rows += [
                Row("wrk, nginx -> api (req/s)", f"{wrk_rps:,.0f}", "the api path's ceiling"),
                *[
                    Row(f"Locust, {n} process(es), nginx -> api (req/s)", f"{rps:,.0f}")
                    for n, rps in locust_rps.items()
                ],  # fmt: skip
                Row(
                    "Locust / wrk",
                    f"{locust_rps[best] / wrk_rps:.2f}",
                    f"best Locust ({best} process(es)); goal >= 0.8",
                ),  # fmt: skip
                Row(
                    "wrk, nginx `return 200` (req/s)",
                    f"{reference:,.0f}",
                    "the proxy's own ceiling",
                ),
                Row("api path / nginx alone", f"{wrk_rps / reference:.2f}"),
            ]
            print("time to first result ...", flush=True)
            ups = time_lab_up(3, workdir)
            each = ", ".join(f"{t:.2f}" for t in ups)
            rows.append(Row("`lab up keepalive-502` to healthy, local (s)",
                            f"{statistics.median(ups):.2f}",
                            f"median of {len(ups)}: {each}; goal <= 2"))  # fmt: skip
            rows.append(Row("`lab up`, compose topology", "n/a", "compose topology not built yet"))
            if not args.skip_check_all:
                print("lab check --all ...", flush=True)
                seconds, passed = time_check_all(workdir)
                rows.append(Row("`lab check --all`, local (s)", f"{seconds:.0f}",
                                "all passed" if passed else "A CHECK FAILED"))  # fmt: skip
    except LabError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        group.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    table = render(rows)
    args.output.write_text(table)
    print(table)
    return 0


def render(rows: list[Row]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| measure | value | note |",
        "|---|---:|---|",
    ]
    lines += [f"| {row.measure} | {row.value} | {row.note} |" for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
