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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.spec import (
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.runtime.signals import interrupts_raise, run_interruptible
from labs.engine.topology import nginx
from labs.engine.topology.local import LocalTopology
from labs.engine.topology.ports import HOST, free_ports

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = "trivial.py"
CONNECTIONS = 64


@dataclass
class Row:
    measure: str
    value: str
    note: str = ""


def goal(value: float, at_least: float | None = None, at_most: float | None = None) -> str:
    """The goal and whether this run met it: "goal >= 0.9: met" or "BELOW GOAL 0.9"."""
    if at_least is not None:
        return f"goal >= {at_least:g}: met" if value >= at_least else f"BELOW GOAL {at_least:g}"
    assert at_most is not None
    return f"goal <= {at_most:g}: met" if value <= at_most else f"ABOVE GOAL {at_most:g}"


@dataclass(frozen=True)
class Drive:
    """What one load generator achieved: throughput, and the CPU it burnt doing it."""

    rps: float
    requests: int
    cpu_s: float
    p50_ms: float = float("nan")

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every finished child process and its descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(url: str, seconds: float) -> Drive:
    """What wrk (2 threads, 64 connections) gets from `url`."""
    binary = shutil.which("wrk")
    if not binary:
        raise LabError("wrk not found; install it: apt-get install wrk")
    cpu = children_cpu_s()
    out = subprocess.run(
        [binary, "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    cpu = children_cpu_s() - cpu
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise LabError(f"could not read wrk's output: {out[-200:]}")
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    p50_ms = float(p50[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50[2]] if p50 else float("nan")
    return Drive(float(rate[1]), int(total[1]), cpu, p50_ms)


def locust(url: str, seconds: float, processes: int, workdir: Path) -> Drive:
    """What headless Locust (FastHttpUser) drives with `processes` workers."""
    report = workdir / f"locust-{processes}"
    argv = [
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / TRIVIAL),
        "--headless", "-u", str(CONNECTIONS), "-r", str(CONNECTIONS), "-t", f"{seconds:g}s",
        "--host", url, "--only-summary", "--json-file", str(report),
        "--exit-code-on-error", "0", "--loglevel", "ERROR",
    ]  # fmt: skip
    if processes > 1:
        argv += ["--processes", str(processes)]
    cpu = children_cpu_s()
    subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=True, cwd=REPO)
    cpu = children_cpu_s() - cpu
    stats = json.loads(report.with_suffix(".json").read_text())
    requests = sum(entry["num_requests"] for entry in stats)
    started = min(entry["start_time"] for entry in stats)
    ended = max(entry["last_request_timestamp"] for entry in stats)
    return Drive(requests / max(ended - started, 1e-9), requests, cpu)


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


POLICY_ARGS = {
    "retry-strategy": "full-jitter",
    "retry-max-attempts": 3,
    "connect-timeout": 1.0,
    "read-timeout": 2.0,
    "retry-deadline": 3.0,
    "max-in-flight": CONNECTIONS,
    "breaker": "on",
}
"""Timeout + bulkhead + breaker + retry, all healthy: no retry, no rejection, no trip."""
PASSTHROUGH_ARGS = {"retry-strategy": "none", "connect-timeout": 0, "retry-deadline": 0}


def gateway_lab(name: str, gateway_args: dict[str, object]) -> tuple[Lab, Variant]:
    """nginx -> gateway -> api, the gateway with `gateway_args`."""
    variant = Variant(
        name=name,
        summary=f"nginx -> gateway ({name}) -> api",
        nginx=NginxSpec(upstream=Upstream(keepalive=CONNECTIONS), backend="gateway"),
        services=(
            ServiceSpec("api", args={"keepalive-timeout": 75}),
            ServiceSpec(
                "gateway",
                module="services.gateway",
                args={"keepalive-timeout": 75, **gateway_args},
                depends_on={"api-url": "api"},
            ),
        ),  # fmt: skip
        load=LoadSpec(TRIVIAL, users=CONNECTIONS, spawn_rate=CONNECTIONS, duration_s=10),
    )
    return Lab("bench", "bench", "", REPO / "README.md", (variant,), ()), variant


def policy_overhead(group: ProcessGroup, workdir: Path, seconds: float) -> list[Row]:
    """The gateway with its whole policy stack against the gateway passing calls straight
    through, alternated (A B A B) so drift on a shared machine hits both; medians."""
    print(f"policy overhead through nginx -> gateway -> api ({seconds:g} s x 4) ...", flush=True)
    drives: dict[str, list[Drive]] = {"policy": [], "passthrough": []}
    for round_ in range(2):
        for name, args in (("passthrough", PASSTHROUGH_ARGS), ("policy", POLICY_ARGS)):
            lab, variant = gateway_lab(name, args)
            topology = LocalTopology(lab, variant, group, workdir / f"{name}-{round_}")
            endpoints = run_interruptible(topology.start())
            try:
                drives[name].append(wrk(f"{endpoints.nginx_url}/work", seconds))
            finally:
                topology.stop()
    rps = {n: statistics.median(d.rps for d in ds) for n, ds in drives.items()}
    p50 = {n: statistics.median(d.p50_ms for d in ds) for n, ds in drives.items()}
    return [
        Row("wrk, gateway passing calls through (req/s)", f"{rps['passthrough']:,.0f}",
            f"p50 {p50['passthrough']:.2f} ms; median of 2"),
        Row("wrk, gateway with timeout + bulkhead + breaker + retry (req/s)",
            f"{rps['policy']:,.0f}", f"p50 {p50['policy']:.2f} ms; median of 2; all healthy"),
        Row("policy / passthrough throughput", f"{rps['policy'] / rps['passthrough']:.2f}",
            f"{goal(rps['policy'] / rps['passthrough'], at_least=0.9)}; p50 difference "
            f"{p50['policy'] - p50['passthrough']:+.2f} ms"),
    ]  # fmt: skip


def time_lab_up(runs: int, workdir: Path, topology: str = "local") -> list[float]:
    """Wall time of `lab up keepalive-502` (it returns once every part is healthy)."""
    env = {**os.environ, "LAB_STATE_DIR": str(workdir / "state")}
    lab = [sys.executable, "-m", "labs.engine.cli"]
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([*lab, "up", "keepalive-502", "--topology", topology], env=env, cwd=REPO,
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        times.append(time.monotonic() - started)
        subprocess.run([*lab, "down"], env=env, cwd=REPO, check=True, capture_output=True)
    return times


def compose_ready() -> str | None:
    """None when a Docker engine answers and the lab's images exist, else why not."""
    try:
        from labs.engine.topology import compose

        compose.preflight()
    except LabError as exc:
        return str(exc)
    return None


def time_check_all(workdir: Path) -> tuple[float, bool]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "labs.engine.cli", "check", "--all",
         "--results-dir", str(workdir / "results")],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "LAB_STATE_DIR": str(workdir / "state")},
    )  # fmt: skip
    return time.monotonic() - started, result.returncode == 0


def load_ceiling(group: ProcessGroup, workdir: Path, seconds: float) -> list[Row]:
    """Locust against wrk on nginx -> api, then wrk on nginx alone."""
    lab, variant = proxy_lab()
    topology = LocalTopology(lab, variant, group, workdir / "proxy")
    endpoints = run_interruptible(topology.start())
    try:
        print(f"load ceiling through nginx -> api ({seconds:g} s each) ...", flush=True)
        by_wrk = wrk(f"{endpoints.nginx_url}/work", seconds)
        by_locust = {n: locust(endpoints.nginx_url, seconds, n, workdir) for n in (1, 2)}
    finally:
        topology.stop()
    best = max(by_locust, key=lambda n: by_locust[n].rps)
    reference = wrk(nginx_return_200(group, workdir), seconds)
    return [
        Row("wrk, nginx -> api (req/s)", f"{by_wrk.rps:,.0f}",
            f"the api path's ceiling; wrk burns {by_wrk.cpu_us_per_request:.0f} us CPU/request"),
        *[
            Row(f"Locust, {n} process(es), nginx -> api (req/s)", f"{d.rps:,.0f}",
                f"Locust burns {d.cpu_us_per_request:.0f} us CPU/request")
            for n, d in by_locust.items()
        ],
        Row("Locust / wrk", f"{by_locust[best].rps / by_wrk.rps:.2f}",
            f"best Locust ({best} process(es)); "
            f"{goal(by_locust[best].rps / by_wrk.rps, at_least=0.8)}. On 2 cores the load "
            "generator and the api share the CPU: every us Locust spends is one the api cannot"),
        Row("wrk, nginx `return 200` (req/s)", f"{reference.rps:,.0f}", "the proxy's own ceiling"),
        Row("api path / nginx alone", f"{by_wrk.rps / reference.rps:.2f}"),
    ]  # fmt: skip


def time_to_first_result(workdir: Path, check_all: bool) -> list[Row]:
    print("time to first result ...", flush=True)
    ups = time_lab_up(3, workdir)
    each = ", ".join(f"{t:.2f}" for t in ups)
    median = statistics.median(ups)
    rows = [Row("`lab up keepalive-502` to healthy, local (s)", f"{median:.2f}",
                f"median of {len(ups)}: {each}; {goal(median, at_most=2)}")]  # fmt: skip
    why_not = compose_ready()
    if why_not is None:
        ups = time_lab_up(3, workdir, "compose")
        each = ", ".join(f"{t:.2f}" for t in ups)
        median = f"{statistics.median(ups):.2f}"
        rows.append(Row("`lab up keepalive-502` to healthy, compose (s)", median,
                        f"median of {len(ups)}: {each}"))  # fmt: skip
    else:
        rows.append(Row("`lab up`, compose topology", "n/a", f"no engine: {why_not}"))
    if check_all:
        print("lab check --all (several minutes) ...", flush=True)
        seconds, passed = time_check_all(workdir)
        rows.append(Row("`lab check --all`, local (s)", f"{seconds:.0f}",
                        "all passed" if passed else "A CHECK FAILED"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="length of each load run")
    parser.add_argument("--skip-check-all", action="store_true", help="skip `lab check --all`")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    group = ProcessGroup(f"bench-{int(time.time())}", workdir)
    try:
        with interrupts_raise():
            rows = load_ceiling(group, workdir, args.seconds)
            rows += policy_overhead(group, workdir, args.seconds)
            rows += time_to_first_result(workdir, not args.skip_check_all)
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
