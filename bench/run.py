"""`make bench`: how fast the lab drives load and what its parts cost.

Every ratio compares two measurements taken side by side in this one run, on
this machine, so they mean something where absolute numbers do not. Writes
bench/results.md and prints the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.load.distributed import finish_load, start_load
from labs.engine.load.driver import LoadFiles
from labs.engine.model.catalog import get_lab
from labs.engine.model.spec import (
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.reporting.stability_store import git
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.runtime.signals import interrupts_raise, run_interruptible
from labs.engine.runtime.timings import RunTimings
from labs.engine.topology import nginx
from labs.engine.topology.local import LocalTopology
from labs.engine.topology.ports import HOST, free_ports

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = "trivial.py"
CONNECTIONS = 64
WORKERS = 4
"""The most Locust workers the load ceiling tries (besides one process, 1 and 2)."""


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


def locust(url: str, seconds: float, workers: int, workdir: Path) -> Drive:
    """What headless Locust (FastHttpUser) drives: one process (workers = 0) or a master
    and `workers` workers, started as a lab's load is (labs.engine.load.distributed);
    the CPU is every Locust process's, the master's included."""
    files = LoadFiles(workdir / f"locust-{workers}")
    load = LoadSpec(TRIVIAL, CONNECTIONS, CONNECTIONS, duration_s=max(1, round(seconds)))
    group = ProcessGroup(f"bench-locust-{workers}-{int(time.time())}", files.directory)
    cpu = children_cpu_s()
    try:
        run = start_load(group, load, url, files, workers)
        deadline = time.monotonic() + seconds + 60
        while run.alive():
            if time.monotonic() > deadline:
                raise LabError(f"Locust ({workers} workers) did not finish: {run.log_tail(3)}")
            time.sleep(0.1)
        asyncio.run(finish_load(group, run))
    finally:
        group.stop_all()
    cpu = children_cpu_s() - cpu
    stats = json.loads(files.json.read_text())
    requests = sum(entry["num_requests"] for entry in stats)
    started = min(entry["start_time"] for entry in stats)
    ended = max(entry["last_request_timestamp"] for entry in stats)
    return Drive(requests / max(ended - started, 1e-9), requests, cpu)


def locust_name(workers: int) -> str:
    return "one process" if workers == 0 else f"master + {workers} worker(s)"


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


POLICY_PAIRS = 8
"""Pairs of wrk runs (pass-through, policy) the policy overhead is the median of."""


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Spread:
    """The median of paired ratios and their range."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.low:.2f}-{self.high:.2f})"


def paired(top: Sequence[float], bottom: Sequence[float]) -> Spread:
    """top[i] / bottom[i] for each pair i, as a median and a range."""
    return Spread.of([a / b for a, b in zip(top, bottom, strict=True)])


def policy_overhead(
    group: ProcessGroup, workdir: Path, seconds: float, pairs: int = POLICY_PAIRS
) -> list[Row]:
    """The gateway with its whole policy stack against the gateway passing calls straight
    through. Both are up at once (the idle one costs nothing); wrk drives them in pairs,
    which one goes first alternating, so drift on a shared machine hits both sides of
    every pair. The ratio is the median of the pairs' ratios; the gateway's own CPU per
    request is read from /proc beside it (the cost the throughput ratio reflects)."""
    names = ("passthrough", "policy")
    print(
        f"policy overhead through nginx -> gateway -> api ({pairs} pairs of {seconds:g} s) ...",
        flush=True,
    )
    drives: dict[str, list[Drive]] = {name: [] for name in names}
    cpu_us: dict[str, list[float]] = {name: [] for name in names}
    started: list[LocalTopology] = []
    try:
        urls, gateways = {}, {}
        for name, args in zip(names, (PASSTHROUGH_ARGS, POLICY_ARGS), strict=True):
            lab, variant = gateway_lab(name, args)
            topology = LocalTopology(lab, variant, group, workdir / name)
            started.append(topology)
            urls[name] = f"{run_interruptible(topology.start()).nginx_url}/work"
            gateways[name] = [child.pid for child in topology.processes("gateway")]
            wrk(urls[name], 1)  # warm-up: connections, pools, first-call paths
        for index in range(pairs):
            for name in names if index % 2 == 0 else names[::-1]:
                before = sum(process_cpu_s(pid) for pid in gateways[name])
                drive = wrk(urls[name], seconds)
                used = sum(process_cpu_s(pid) for pid in gateways[name]) - before
                drives[name].append(drive)
                cpu_us[name].append(used / max(drive.requests, 1) * 1e6)
    finally:
        for topology in started:
            topology.stop()
    rps = {n: statistics.median(d.rps for d in ds) for n, ds in drives.items()}
    p50 = {n: statistics.median(d.p50_ms for d in ds) for n, ds in drives.items()}
    cpu = {n: statistics.median(us) for n, us in cpu_us.items()}
    ratio = paired([d.rps for d in drives["policy"]], [d.rps for d in drives["passthrough"]])
    cost = paired(cpu_us["policy"], cpu_us["passthrough"])
    each = f"median of {pairs}"
    return [
        Row("wrk, gateway passing calls through (req/s)", f"{rps['passthrough']:,.0f}",
            f"p50 {p50['passthrough']:.2f} ms; gateway CPU {cpu['passthrough']:.0f} us/request; "
            f"{each}"),
        Row("wrk, gateway with timeout + bulkhead + breaker + retry (req/s)",
            f"{rps['policy']:,.0f}",
            f"p50 {p50['policy']:.2f} ms; gateway CPU {cpu['policy']:.0f} us/request; {each}; "
            "all healthy"),
        Row("policy / passthrough throughput", f"{ratio.median:.2f}",
            f"{goal(ratio.median, at_least=0.9)}; {pairs} alternated pairs range "
            f"{ratio.low:.2f}-{ratio.high:.2f}; gateway CPU per request policy / passthrough "
            f"{cost}"),
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


LAB_VERDICT = re.compile(r"^[a-z0-9-]+: (PASS|FAIL)\b")
"""`lab check`'s line for each lab as it finishes ("overload: PASS (151.2 s, ...)")."""


def time_check_all(workdir: Path, labs: Sequence[str] = ()) -> tuple[float, bool]:
    """Wall time of `lab check --all` (or `labs`) and whether it passed; each lab's
    verdict line is passed on as it comes (the whole catalog takes about 20 minutes)."""
    argv = [sys.executable, "-m", "labs.engine.cli", "check", *(labs or ["--all"]),
            "--results-dir", str(workdir / "results")]  # fmt: skip
    env = {**os.environ, "LAB_STATE_DIR": str(workdir / "state")}
    started = time.monotonic()
    with (
        (workdir / "check.log").open("w") as log,
        subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        ) as child,
    ):
        try:
            for line in child.stdout or ():
                if LAB_VERDICT.match(line):
                    print(f"  {line.rstrip()}", flush=True)
            child.wait()
        except BaseException:
            child.terminate()  # it stops its own children, as on Ctrl-C
            child.wait(timeout=30)
            raise
    return time.monotonic() - started, child.returncode == 0


def check_overhead(workdir: Path, labs: Sequence[str] = ()) -> list[Row]:
    """`lab check --all` (or `labs`): its wall time over the seconds of load its runs
    need, and where the rest goes, from every run's timings.json (see
    labs/engine/runtime/timings.py)."""
    seconds, passed = time_check_all(workdir, labs)
    return overhead_rows(seconds, passed, workdir / "results", labs)


def overhead_rows(
    seconds: float, passed: bool, results: Path, labs: Sequence[str] = ()
) -> list[Row]:
    """The rows of `check_overhead` from the wall time and the runs' timings.json."""
    runs = {p: RunTimings(**json.loads(p.read_text()))
            for p in sorted(results.glob("*/*/timings.json"))}  # fmt: skip
    lab_of = {path: path.parent.parent.name for path in runs}
    parallel = {path: get_lab(lab).parallel_variants for path, lab in lab_of.items()}
    load = sum(run.load_s for run in runs.values())
    phases: dict[str, float] = {}
    for path, run in runs.items():
        critical = run.critical(parallel[path])
        for name, value in [*critical.items(), ("setup", run.setup_s), ("report", run.report_s)]:
            phases[name] = phases.get(name, 0.0) + value
    phases["between runs"] = seconds - sum(run.wall_s for run in runs.values())
    phases["exit"] = phases.pop("load", 0.0) + phases.get("exit", 0.0) - load
    ranked = sorted(phases.items(), key=lambda kv: -abs(kv[1]))
    rest = ", ".join(f"{name} {value:.1f}" for name, value in ranked)
    what = f"`lab check {' '.join(labs) or '--all'}`"
    ratio = seconds / max(load, 1e-9)
    per_lab = [
        Row(f"`lab check {lab_of[path]}` wall / seconds of load", f"{run.ratio:.2f}",
            f"{run.wall_s:.1f} s for {run.load_s:.1f} s: {run.phases_text(parallel[path])}")
        for path, run in runs.items()
    ]  # fmt: skip
    return [
        Row(f"{what}, local (s)", f"{seconds:.0f}", "all passed" if passed else "A CHECK FAILED"),
        Row(f"{what} wall / seconds of load", f"{ratio:.2f}",
            f"{goal(ratio, at_most=1.05)}; {load:.0f} s of load in {len(runs)} runs"),
        Row(f"{what}: where the other {seconds - load:.0f} s go (s)", f"{seconds - load:.1f}",
            f"{rest} (exit: Locust's exits, and load that ran past a variant's planned "
            "seconds)"),
        *per_lab,
    ]  # fmt: skip


def load_ceiling(
    group: ProcessGroup, workdir: Path, seconds: float, workers: int = WORKERS
) -> list[Row]:
    """Locust (one process; a master and 1, 2, `workers` workers) against wrk on
    nginx -> api, then wrk on nginx alone."""
    lab, variant = proxy_lab()
    topology = LocalTopology(lab, variant, group, workdir / "proxy")
    endpoints = run_interruptible(topology.start())
    try:
        print(f"load ceiling through nginx -> api ({seconds:g} s each) ...", flush=True)
        by_wrk = wrk(f"{endpoints.nginx_url}/work", seconds)
        counts = sorted({0, 1, 2, workers})
        by_locust = {n: locust(endpoints.nginx_url, seconds, n, workdir) for n in counts}
    finally:
        topology.stop()
    best = max(by_locust, key=lambda n: by_locust[n].rps)
    reference = wrk(nginx_return_200(group, workdir), seconds)
    return [
        Row("wrk, nginx -> api (req/s)", f"{by_wrk.rps:,.0f}",
            f"the api path's ceiling; wrk burns {by_wrk.cpu_us_per_request:.0f} us CPU/request"),
        *[
            Row(f"Locust, {locust_name(n)}, nginx -> api (req/s)", f"{d.rps:,.0f}",
                f"Locust burns {d.cpu_us_per_request:.0f} us CPU/request")
            for n, d in by_locust.items()
        ],
        Row("Locust / wrk", f"{by_locust[best].rps / by_wrk.rps:.2f}",
            f"best Locust ({locust_name(best)}); "
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
        print("lab check --all (about 20 minutes) ...", flush=True)
        rows += check_overhead(workdir)
    return rows


def simulations() -> list[Row]:
    """`lab simulate`'s models (labs/simulate): the issue's sizes against their time goals,
    and how the retries model's cost grows with N (log-log slope over N = 250..2000)."""
    from dataclasses import replace

    from labs.simulate import overload, retries
    from labs.simulate.overload_lab import lab_params

    print("simulations: overload at 10,000/s for 60 s, retries at N = 1,000 ...", flush=True)
    broken = lab_params()["broken"]
    scale = 10_000 / broken.rate_per_s
    big = replace(broken, rate_per_s=10_000, workers=round(broken.workers * scale), arrivals_s=60)
    started = time.perf_counter()
    run = overload.simulate(big)
    overload_s = time.perf_counter() - started
    started = time.perf_counter()
    retries.sweep(retries.STRATEGIES, [1000], 10)
    retries_s = time.perf_counter() - started
    growth = []
    for strategy in ("none", "full-jitter"):
        sizes = (250, 500, 1000, 2000)
        seconds = []
        for n in sizes:
            started = time.perf_counter()
            retries.simulate(strategy, n, 1)
            seconds.append(time.perf_counter() - started)
        slope = statistics.linear_regression(
            [math.log(n) for n in sizes], [math.log(s) for s in seconds]
        ).slope
        growth.append(f"{strategy} ~N^{slope:.1f} ({seconds[-1]:.2f} s at N = 2,000)")
    return [
        Row("`lab simulate overload`, 10,000/s for 60 s (s)", f"{overload_s:.1f}",
            f"{goal(overload_s, at_most=10)}; {run.requests:,} requests, {run.attempts:,} "
            f"attempts ({big.workers:,} workers x {big.work_ms:g} ms, {run.verdict})"),
        Row("`lab simulate retries`, N = 1,000, 5 strategies x 10 runs (s)", f"{retries_s:.1f}",
            f"{goal(retries_s, at_most=60)}; one run's time grows as {', '.join(growth)}"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="length of each load run")
    parser.add_argument("--skip-check-all", action="store_true", help="skip `lab check --all`")
    parser.add_argument("--locust-workers", type=int, default=WORKERS, metavar="N",
                        help=f"most Locust workers the load ceiling tries ({WORKERS})")  # fmt: skip
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    group = ProcessGroup(f"bench-{int(time.time())}", workdir)
    try:
        with interrupts_raise():
            rows = load_ceiling(group, workdir, args.seconds, args.locust_workers)
            rows += policy_overhead(group, workdir, args.seconds / 2)
            rows += time_to_first_result(workdir, not args.skip_check_all)
            rows += simulations()
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


def commit() -> str:
    """The commit measured ("abc1234", "+ uncommitted changes" when the tree differs)."""
    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except LabError:
        return "no git commit"
    return head + (" + uncommitted changes" if dirty else "")


def render(rows: list[Row]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, at {commit()}.",
        "",
        "| measure | value | note |",
        "|---|---:|---|",
    ]
    lines += [f"| {row.measure} | {row.value} | {row.note} |" for row in rows]
    lines += ["", "Reading `lab check`'s phases (labs/engine/runtime/timings.py):", ""]
    lines += [f"- {name}: {meaning}" for name, meaning in PHASE_MEANINGS.items()]
    return "\n".join(lines) + "\n"


PHASE_MEANINGS = {
    "start": "starting a variant's topology until every part answers its health check "
    "(a Python process per service replica, all at once; a parallel lab starts all its "
    "variants at once)",
    "spinup": "Locust's start (importing Locust and gevent) to its first request",
    "load": "first request to last answer (a stream is recorded when its headers arrive, "
    "so a streaming lab's load looks short and its exit long)",
    "exit": "last answer to Locust's exit, its files written (and workers' records merged)",
    "seconds of load": "per variant, load + exit, at most its planned duration: a locustfile "
    "may end the run sooner (an open-loop schedule that is over, a rolling restart that is "
    "done); summed over variants run in turn, the longest of variants run at once",
    "collect, stop, measure": "the services' counters, stopping the topology, reading the records",
    "report": "judging the checks and writing results.json, report.md, the PNG plots (drawn "
    "two at a time) and report.html",
    "between runs": "the `lab check` process itself: start-up, sweeping, between labs",
}


if __name__ == "__main__":
    sys.exit(main())
