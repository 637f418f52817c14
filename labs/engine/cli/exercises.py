"""Exercises: `lab exercise` (the broken settings to fix), `lab grade`, `lab hint`,
`lab solution`."""

from __future__ import annotations

import argparse

from labs.engine.cli.output import LiveProgress, out
from labs.engine.exercises import exercise
from labs.engine.model.catalog import get_lab
from labs.engine.reporting import terminal
from labs.engine.runner import RunOptions


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
