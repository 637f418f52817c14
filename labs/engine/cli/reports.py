"""The catalog and past runs: `lab list`, `lab show`, `lab report`."""

from __future__ import annotations

import argparse

from labs.engine.cli.output import out, runs_table
from labs.engine.errors import LabError
from labs.engine.model.catalog import all_labs, get_lab
from labs.engine.reporting import report, stability_store, terminal


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
    out.print(
        "\nHow stable its checks are (`make stability`, bench/stability.md): passed runs, "
        "and min / median / max of the number each check judges",
        highlight=False,
        markup=False,
    )
    for line in stability_store.summary_lines(lab.name):
        out.print(line, highlight=False, markup=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.lab:
        get_lab(args.lab)  # a typo is an error, not "no runs"
    runs = report.list_runs(args.results_dir, args.lab)
    if not runs:
        where = args.results_dir / (args.lab or "")
        raise LabError(f"no runs under {where} yet (start one with `lab run LAB`)")
    out.print(runs_table(runs[: args.limit]))
    print(runs[0].report)  # alone on the last line: `xdg-open "$(lab report | tail -1)"`
    return 0
