"""What `lab` prints: the two consoles, the checks and runs tables, live progress."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from labs.engine.analysis.metrics import VariantResult
from labs.engine.load.driver import CLIENT_RETRY_SUFFIX
from labs.engine.load.driver import Progress as LoadProgress
from labs.engine.model.spec import Lab
from labs.engine.reporting.report import RunRecord
from labs.engine.runner import RunOutcome

out = Console(soft_wrap=True)
err = Console(stderr=True)


def print_checks(outcome: RunOutcome) -> None:
    colour = {"PASS": "green", "FAIL": "red", "DEFECT": "red", "NOT JUDGED": "yellow"}
    for check in outcome.checks:
        rest = escape(check.line(outcome.lab.name)[len(check.verdict) :])
        out.print(f"[{colour[check.verdict]}]{check.verdict}[/]{rest}", highlight=False)


def runs_table(runs: Sequence[RunRecord]) -> Table:
    """`lab report`: one row per run, newest first."""
    table = Table(title=None)
    table.add_column("finished", no_wrap=True)
    table.add_column("lab", no_wrap=True)
    table.add_column("variants")
    table.add_column("verdict", no_wrap=True)
    table.add_column("report", overflow="fold")
    for run in runs:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "?"}[run.passed]
        finished = time.strftime("%m-%d %H:%M:%S", time.localtime(run.finished))
        table.add_row(finished, run.lab, " ".join(run.variants), verdict, str(run.report))
    return table


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
        retries = sum(r.name.endswith(CLIENT_RETRY_SUFFIX) for r in result.raw_requests)
        if retries:
            status = f"status of all {result.requests} attempts: {status}"
        err.print(
            f"[{self.lab.name}] {result.variant}: {requests_text(result.requests, retries)} "
            f"({status}), "
            f"p99 {result.p99_ms:.1f} ms",
            highlight=False,
            markup=False,
        )


def requests_text(attempts: int, client_retries: int) -> str:
    """What Locust counted: '243 requests', or, when the users retry themselves,
    '1941 user requests + 1350 client retries' (a lab's table counts the user requests;
    Locust's total, 3291 here, counts every attempt)."""
    if not client_retries:
        return f"{attempts} requests"
    return f"{attempts - client_retries} user requests + {client_retries} client retries"


def progress_text(load: LoadProgress | None) -> str:
    """'243 requests  errors 502: 21, 503: 2  p99 38 ms' (rich markup). With client
    retries the count is split ('1941 user requests + 1350 client retries') and the
    errors are per attempt."""
    if load is None:
        return "[dim]starting[/]"
    errors = ", ".join(f"{code}: {n}" for code, n in load.errors.items())
    if not errors and load.failures:
        errors = f"{load.failures}"
    label = "failed attempts" if load.client_retries else "errors"
    parts = [
        requests_text(load.requests, load.client_retries),
        f"[red]{label} {errors}[/]" if errors else "no errors",
    ]
    if load.p99_ms is not None:
        parts.append(f"p99 {load.p99_ms:.0f} ms")
    return "  ".join(parts)
