"""The `lab` command line: every command's arguments, and the option types they share."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NoReturn

from labs.engine.cli import faults as faultcli
from labs.engine.cli.exercises import cmd_exercise, cmd_grade, cmd_hint, cmd_solution
from labs.engine.cli.exploring import cmd_down, cmd_status, cmd_up
from labs.engine.cli.reports import cmd_list, cmd_report, cmd_show
from labs.engine.cli.running import DEMO_LAB, cmd_check, cmd_demo, cmd_run
from labs.engine.errors import LabError
from labs.engine.load.distributed import MAX_WORKERS, check_workers
from labs.engine.reporting import stability
from labs.engine.topology.base import TOPOLOGIES
from labs.simulate import cli as simulatecli

MAX_DURATION_S = 3600.0


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


def locust_workers(text: str) -> int:
    try:
        return check_workers(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    except LabError as exc:
        raise argparse.ArgumentTypeError(f"must be 0-{MAX_WORKERS}, got {text!r}") from exc


def locust_workers_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--locust-workers",
        type=locust_workers,
        default=0,
        metavar="N",
        help="drive the load from a Locust master and N worker processes (default 0: one)",
    )


def topology_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="local",
        help="local processes (default) or Docker Compose containers",
    )


def run_options(sub: argparse.ArgumentParser) -> None:
    """What `lab run`, `lab check` and `lab demo` share."""
    topology_option(sub)
    locust_workers_option(sub)
    sub.add_argument("--duration", type=seconds, help="seconds of load per variant")
    sub.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    sub.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="where results/<lab>/<timestamp>/ go (default ./results)",
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

    running_commands(commands)

    report_cmd = commands.add_parser(
        "report", help="list recent runs; the last line is the newest report's path"
    )
    report_cmd.add_argument("lab", nargs="?", help="only this lab's runs")
    report_cmd.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="default ./results"
    )
    report_cmd.add_argument("--limit", type=int, default=10, help="runs to list (default 10)")
    report_cmd.set_defaults(handler=cmd_report)

    exploring_commands(commands)
    faultcli.add_parser(commands)
    simulatecli.add_parser(commands)
    exercise_commands(commands)
    return parser


def running_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a lab's variants and judge its checks")
    run.add_argument("lab", help="lab name (see `lab list`)")
    run.add_argument(
        "--variant", action="append", metavar="V", help="only this variant (repeatable)"
    )
    run.add_argument(
        "--live",
        action="store_true",
        help="serve each variant's live dashboard on 127.0.0.1 while it runs (URL on stderr)",
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
    check.add_argument(
        "--timings",
        action="store_true",
        help="also print where each run's wall time went (start-up, load, stop, report, ...)",
    )
    run_options(check)
    check.set_defaults(handler=cmd_check, variant=None)

    demo = commands.add_parser(
        "demo", help=f"one lab end to end ({DEMO_LAB}), a summary, what to try next"
    )
    demo.add_argument("--all", action="store_true", help="every demo lab, one after another")
    run_options(demo)
    demo.set_defaults(handler=cmd_demo)


def exploring_commands(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="bring a variant's topology up for exploring by hand")
    up.add_argument("lab", help="lab name (see `lab list`)")
    up.add_argument("--variant", metavar="V", help="variant to bring up (default: the first)")
    up.add_argument("--port", type=port, help="nginx's port on 127.0.0.1 (default: a free one)")
    topology_option(up)
    locust_workers_option(up)
    up.set_defaults(handler=cmd_up)

    status = commands.add_parser("status", help="what `lab up` has running: URLs, log files")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--log", metavar="NAME", help="print one log's path (nginx-error, nginx-access, api-1, ...)"
    )
    status.set_defaults(handler=cmd_status)

    commands.add_parser("down", help="stop what `lab up` started").set_defaults(handler=cmd_down)


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
