"""`lab`: list, read, run, check and explore the labs.

Exit status: 0 = all checks passed, 1 = a check failed, 2 = bad input or a
missing prerequisite (one line on stderr), 130/143 = interrupted (everything
the run started has been stopped).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from labs.engine import exercise, faultcli, junit, report, stability, terminal
from labs.engine.catalog import all_labs, get_lab
from labs.engine.errors import LabError
from labs.engine.load import Progress as LoadProgress
from labs.engine.metrics import VariantResult
from labs.engine.ports import ensure_port_free
from labs.engine.processes import pid_alive
from labs.engine.runner import (
    Interrupted,
    RunOptions,
    RunOutcome,
    run_lab,
    select_variants,
    shortened,
)
from labs.engine.spec import Lab
from labs.engine.state import (
    cleanup_run,
    new_run_id,
    read_json,
    state_dir,
    sweep_stale_runs,
    up_file,
    up_log,
)
from labs.engine.topology import TOPOLOGIES, preflight

UP_TIMEOUT_S = 30.0
UP_TIMEOUT_COMPOSE_S = 120.0
"""Compose: containers start, then every replica must answer its health check."""
MAX_DURATION_S = 3600.0

out = Console(soft_wrap=True)
err = Console(stderr=True)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def seconds(text: str) -> int:
    """Whole seconds: Locust's run time (-t) takes no fractions."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 1 or value > MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be >= 1 and <= {MAX_DURATION_S:g} s, got {text!r}")
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be whole seconds, got {text!r}")
    return int(value)


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {value}")
    return value


# --- progress ---------------------------------------------------------------------------


class LiveProgress:
    """During `lab run`, one updating line per running variant on a terminal:
    elapsed / total, requests, errors by status, Locust's current p99. Silent when
    stderr is not a terminal (CI logs get the final table, not a scroll of ticks)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.interactive = err.is_terminal
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.completed:>3.0f}/{task.total:.0f} s  {task.fields[stats]}"),
            console=err,
            transient=True,
            disable=not self.interactive,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self.bar.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.bar.stop()

    def update(self, variant: str, elapsed: float, total: float, load: LoadProgress | None) -> None:
        if variant not in self.tasks:
            self.tasks[variant] = self.bar.add_task(
                f"{self.lab.name} {variant}", total=total, stats=""
            )
        self.bar.update(
            self.tasks[variant], completed=min(elapsed, total), stats=progress_text(load)
        )

    def done(self, result: VariantResult) -> None:
        if variant_task := self.tasks.pop(result.variant, None):
            self.bar.remove_task(variant_task)
        if not self.interactive:
            return
        status = ", ".join(f"{code}: {n}" for code, n in result.status.items())
        err.print(
            f"[{self.lab.name}] {result.variant}: {result.requests} requests ({status}), "
            f"p99 {result.p99_ms:.1f} ms",
            highlight=False,
            markup=False,
        )


def progress_text(load: LoadProgress | None) -> str:
    """'243 requests  errors 502: 21, 503: 2  p99 38 ms' (rich markup)."""
    if load is None:
        return "[dim]starting[/]"
    errors = ", ".join(f"{code}: {n}" for code, n in load.errors.items())
    if not errors and load.failures:
        errors = f"{load.failures}"
    parts = [f"{load.requests} requests", f"[red]errors {errors}[/]" if errors else "no errors"]
    if load.p99_ms is not None:
        parts.append(f"p99 {load.p99_ms:.0f} ms")
    return "  ".join(parts)


def run_with_progress(lab: Lab, args: argparse.Namespace, quiet: bool = False) -> RunOutcome:
    variants = select_variants(lab, args.variant or ())  # unknown variant: fail before starting
    unjudged = shortened(variants, args.duration)
    if unjudged and not quiet:
        err.print(f"{lab.name}: checks {unjudged}", highlight=False, markup=False)
    live = LiveProgress(lab)
    options = RunOptions(
        variants=args.variant or (),
        duration_s=args.duration,
        results_root=args.results_dir,
        topology=args.topology,
        progress=None if quiet else live.update,
        variant_done=None if quiet else live.done,
    )
    with live:
        return run_lab(lab, options)


# --- output -----------------------------------------------------------------------------


def print_checks(outcome: RunOutcome) -> None:
    colour = {"PASS": "green", "FAIL": "red", "DEFECT": "red", "NOT JUDGED": "yellow"}
    for check in outcome.checks:
        rest = escape(check.line(outcome.lab.name)[len(check.verdict) :])
        out.print(f"[{colour[check.verdict]}]{check.verdict}[/]{rest}", highlight=False)


# --- commands ---------------------------------------------------------------------------


def cmd_list(_args: argparse.Namespace) -> int:
    for lab in all_labs():
        variants = ", ".join(v.name for v in lab.variants)
        extra = "; `lab exercise` to fix it yourself" if lab.exercise else ""
        out.print(
            f"[bold]{lab.name:<16}[/] {lab.question}  [dim]({variants}{extra})[/]",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    terminal.print_guide(out, lab.guide.read_text())
    out.print("\nVariants (each check is re-judged on a variant's twin to prove it can fail):")
    for variant in lab.variants:
        role = f"twin: {variant.twin}" if variant.twin else ""
        if variant.explore:
            role = (
                f"{role}; for exploring: {variant.explore}"
                if role
                else (f"for exploring: {variant.explore}")
            )
        out.print(f"  {variant.name}: {variant.summary}" + (f" ({role})" if role else ""),
                  highlight=False, markup=False)  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    outcome = run_with_progress(lab, args, quiet=False)
    if args.json:
        print(json.dumps(outcome.to_dict()))
    else:
        out.print(terminal.numbers_table(outcome))
        print_checks(outcome)
        out.print(f"report: {outcome.results_dir / 'report.html'}", highlight=False)
    return 0 if outcome.passed else 1


def cmd_check(args: argparse.Namespace) -> int:
    if args.all and args.labs:
        raise LabError("give lab names or --all, not both")
    if not args.all and not args.labs:
        raise LabError("name at least one lab, or --all (see `lab list`)")
    labs = all_labs() if args.all else [get_lab(name) for name in args.labs]
    for lab in labs:  # a duration no check can be judged at: say so before any lab runs
        if shortened(lab.variants, args.duration):
            raise LabError(
                f"{lab.name}: {shortened(lab.variants, args.duration)}; `lab check` judges "
                "every check: drop --duration or give a longer one"
            )
    if args.junit:
        junit.ensure_writable(args.junit)
    documents: list[dict[str, object]] = []
    suites: list[junit.LabRun] = []
    passed = True
    for lab in labs:
        outcomes = []
        for number in range(1, (args.repeat or 1) + 1):
            stamp, started = time.strftime("%Y-%m-%dT%H:%M:%S"), time.monotonic()
            outcome = run_with_progress(lab, args, quiet=True)
            seconds = time.monotonic() - started
            outcomes.append(outcome)
            passed &= outcome.passed
            name = f"{lab.name} run {number}/{args.repeat}" if args.repeat else lab.name
            directory = str(outcome.results_dir)
            suites.append(junit.LabRun(lab.name, outcome.checks, seconds, directory, stamp, name))
            if not args.repeat:
                documents.append(outcome.to_dict())
            if not args.json:
                for check in outcome.checks:  # --repeat: only what did not pass
                    if not args.repeat or check.verdict != "PASS":
                        print(check.line(lab.name))
                print(
                    f"{name}: {'PASS' if outcome.passed else 'FAIL'} "
                    f"({seconds:.1f} s, {outcome.results_dir})"
                )
        if args.repeat:
            runs = [o.checks for o in outcomes]
            directories = [str(o.results_dir) for o in outcomes]
            documents.append(stability.lab_document(lab.name, runs, directories))
            passed &= bool(documents[-1]["passed"])
            if not args.json:
                for band in stability.summarize(runs):
                    print(band.line(lab.name))
    if args.junit:
        junit.write(args.junit, suites)
    if args.json:
        if args.repeat:
            document: object = {"passed": passed, "repeat": args.repeat, "labs": documents}
        else:
            single = len(documents) == 1
            document = documents[0] if single else {"passed": passed, "labs": documents}
        print(json.dumps(document))
    return 0 if passed else 1


DEMO_LAB = "keepalive-502"
DEMO_WHY = (
    "the quickest lab that shows the whole job: a failure reproduced (broken: 502s from "
    "a healthy api), its fix proven (fixed), and a retry that hides it (masked)"
)


def load_seconds(lab: Lab, duration: float | None) -> float:
    """Seconds of load a full run of the lab takes (its variants at once, or in turn)."""
    each = [duration or v.load.duration_s for v in lab.variants]
    return max(each) if lab.parallel_variants else sum(each)


def demo_plan(every: bool, duration: float | None) -> tuple[list[Lab], str]:
    """The labs `lab demo` runs, and the line that says which and why."""
    demo_labs = [lab for lab in all_labs() if lab.demo]
    if every:
        left_out = [lab.name for lab in all_labs() if not lab.demo]
        minutes = sum(load_seconds(lab, duration) for lab in demo_labs) / 60
        return demo_labs, (
            f"demo: every demo lab, one after another ({len(demo_labs)}, over {minutes:.0f} "
            f"min of load): {', '.join(lab.name for lab in demo_labs)}"
            + (f"; not {', '.join(left_out)} (run them with `lab run`)" if left_out else "")
        )
    lab = get_lab(DEMO_LAB)
    together = "side by side" if lab.parallel_variants else "one after another"
    load = load_seconds(lab, duration)
    return [lab], (
        f"demo: {lab.name}, one lab end to end: its {len(lab.variants)} variants {together}, "
        f"{load:.0f} s of load (about {load + 10:.0f} s in all). Why this one: {DEMO_WHY}. "
        f"`lab demo --all` runs all {len(demo_labs)} demo labs (minutes)."
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """One lab end to end (`--all`: every demo lab), a summary that fits any terminal,
    then the commands to try next."""
    args.variant = None
    labs, intro = demo_plan(args.all, args.duration)
    out.print(intro + "\n", highlight=False, markup=False, soft_wrap=False)
    outcomes = [run_with_progress(lab, args) for lab in labs]
    out.print(terminal.summary(outcomes))
    for outcome in outcomes:
        out.print(f"report: {outcome.results_dir / 'report.html'}", highlight=False)
    more = [] if args.all else [("lab demo --all", "every demo lab, one after another")]
    out.print("\n" + terminal.next_steps(labs[0], more), highlight=False, markup=False)
    return 0 if all(o.passed for o in outcomes) else 1


def cmd_report(args: argparse.Namespace) -> int:
    if args.lab:
        get_lab(args.lab)  # a typo is an error, not "no runs"
    runs = report.list_runs(args.results_dir, args.lab)
    if not runs:
        where = args.results_dir / (args.lab or "")
        raise LabError(f"no runs under {where} yet (start one with `lab run LAB`)")
    table = Table(title=None)
    table.add_column("finished", no_wrap=True)
    table.add_column("lab", no_wrap=True)
    table.add_column("variants")
    table.add_column("verdict", no_wrap=True)
    table.add_column("report", overflow="fold")
    for run in runs[: args.limit]:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "?"}[run.passed]
        finished = time.strftime("%m-%d %H:%M:%S", time.localtime(run.finished))
        table.add_row(finished, run.lab, " ".join(run.variants), verdict, str(run.report))
    out.print(table)
    print(runs[0].report)  # alone on the last line: `xdg-open "$(lab report | tail -1)"`
    return 0


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
    argv = [sys.executable, "-m", "labs.engine.supervisor", "--lab", lab.name,
            "--variant", variant.name, "--run-id", run_id]  # fmt: skip
    if args.port is not None:
        argv += ["--port", str(args.port)]
    argv += ["--topology", args.topology]
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


# --- parser -----------------------------------------------------------------------------


def cmd_exercise(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    workspace, written = exercise.create(lab, reset=args.reset)
    terminal.print_guide(out, exercise.task_text(lab))
    if not written:
        out.print(f"{workspace.directory} already exists: your edits are kept "
                  f"(`lab exercise {lab.name} --reset` starts over)", highlight=False)  # fmt: skip
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    exercise.exercise_of(lab)
    args.variant = None
    options = RunOptions(duration_s=args.duration, results_root=args.results_dir)
    live = LiveProgress(lab)
    options.progress, options.variant_done = live.update, live.done
    with live:
        result = exercise.grade(lab, options, path=args.file)
    mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    out.print(f"{mark} {result.verdict}", highlight=False)
    if result.outcome:
        out.print(f"report: {result.outcome.results_dir / 'report.html'}", highlight=False)
    return 0 if result.passed else 1


def cmd_hint(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    number, text = exercise.next_hint(lab)
    total = len(exercise.exercise_of(lab).hints)
    out.print(f"hint {number} of {total}: {text}", highlight=False)
    if number == total:
        out.print(f"(that is the last hint; `lab solution {lab.name}` shows the answer)")
    return 0


def cmd_solution(args: argparse.Namespace) -> int:
    print(exercise.solution_diff(get_lab(args.lab)), end="")
    return 0


def exercise_commands(commands: argparse._SubParsersAction) -> None:
    start = commands.add_parser("exercise", help="get the broken lab's settings to fix yourself")
    start.add_argument("lab", help="lab name (see `lab list`)")
    start.add_argument("--reset", action="store_true", help="start over (discards your edits)")
    start.set_defaults(handler=cmd_exercise)

    grade = commands.add_parser("grade", help="run your edited settings; does the fix hold?")
    grade.add_argument("lab", help="lab name (see `lab list`)")
    grade.add_argument("--file", type=Path, help="settings file (default: exercises/LAB/...)")
    grade.add_argument("--duration", type=seconds, help="seconds of load per run")
    grade.add_argument("--results-dir", type=Path, default=Path("results"),
                       help="where the grading runs' results go (default ./results)")  # fmt: skip
    grade.set_defaults(handler=cmd_grade)

    hint = commands.add_parser("hint", help="the next hint for an exercise")
    hint.add_argument("lab", help="lab name (see `lab list`)")
    hint.set_defaults(handler=cmd_hint)

    solution = commands.add_parser("solution", help="the diff from broken to fixed settings")
    solution.add_argument("lab", help="lab name (see `lab list`)")
    solution.set_defaults(handler=cmd_solution)


def topology_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="local",
        help="local processes (default) or Docker Compose containers",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lab",
        description="Reproduce, observe and fix networking and resilience failure modes.",
        epilog="Start with `lab list`, then `lab show LAB` and `lab run LAB`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("list", help="the catalog, one line per lab").set_defaults(handler=cmd_list)

    show = commands.add_parser("show", help="print a lab's guide")
    show.add_argument("lab", help="lab name (see `lab list`)")
    show.set_defaults(handler=cmd_show)

    def run_options(sub: argparse.ArgumentParser) -> None:
        topology_option(sub)
        sub.add_argument("--duration", type=seconds, help="seconds of load per variant")
        sub.add_argument("--json", action="store_true", help="print one JSON document to stdout")
        sub.add_argument(
            "--results-dir",
            type=Path,
            default=Path("results"),
            help="where results/<lab>/<timestamp>/ go (default ./results)",
        )

    run = commands.add_parser("run", help="run a lab's variants and judge its checks")
    run.add_argument("lab", help="lab name (see `lab list`)")
    run.add_argument(
        "--variant", action="append", metavar="V", help="only this variant (repeatable)"
    )
    run_options(run)
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="run labs' checks, CI-style terse output")
    check.add_argument("labs", nargs="*", metavar="LAB", help="lab names")
    check.add_argument("--all", action="store_true", help="every lab in the catalog")
    check.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML here")
    check.add_argument(
        "--repeat",
        type=stability.repeat_count,
        metavar="N",
        help="run each lab N times (1-50): each check's pass rate and value band",
    )
    run_options(check)
    check.set_defaults(handler=cmd_check, variant=None)

    demo = commands.add_parser(
        "demo", help=f"one lab end to end ({DEMO_LAB}), a summary, what to try next"
    )
    demo.add_argument("--all", action="store_true", help="every demo lab, one after another")
    run_options(demo)
    demo.set_defaults(handler=cmd_demo)

    report_cmd = commands.add_parser(
        "report", help="list recent runs; the last line is the newest report's path"
    )
    report_cmd.add_argument("lab", nargs="?", help="only this lab's runs")
    report_cmd.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="default ./results"
    )
    report_cmd.add_argument("--limit", type=int, default=10, help="runs to list (default 10)")
    report_cmd.set_defaults(handler=cmd_report)

    up = commands.add_parser("up", help="bring a variant's topology up for exploring by hand")
    up.add_argument("lab", help="lab name (see `lab list`)")
    up.add_argument("--variant", metavar="V", help="variant to bring up (default: the first)")
    up.add_argument("--port", type=port, help="nginx's port on 127.0.0.1 (default: a free one)")
    topology_option(up)
    up.set_defaults(handler=cmd_up)

    status = commands.add_parser("status", help="what `lab up` has running: URLs, log files")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--log", metavar="NAME", help="print one log's path (nginx-error, nginx-access, api-1, ...)"
    )
    status.set_defaults(handler=cmd_status)

    commands.add_parser("down", help="stop what `lab up` started").set_defaults(handler=cmd_down)
    faultcli.add_parser(commands)
    exercise_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LabError as exc:
        err.print(f"lab: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return 2
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        err.print(
            f"lab: interrupted ({signal.Signals(signum).name}); stopped everything it started",
            highlight=False,
        )
        return 128 + signum
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
