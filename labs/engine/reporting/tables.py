"""A lab's own tables of the report (`Lab.tables`), built from the run's results and
written as Markdown (report.md) and handed to report.html's template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Lab


@dataclass(frozen=True)
class RenderedTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    error: str = ""
    """Why the table could not be built ("" = it was)."""


def render_all(lab: Lab, results: Mapping[str, VariantResult]) -> list[RenderedTable]:
    """Every table of `lab`; one whose builder fails is kept with its error, so a bad
    table never costs the rest of the report."""
    rendered = []
    for table in lab.tables:
        try:
            rows = tuple(tuple(str(cell) for cell in row) for row in table.rows(results))
            rendered.append(RenderedTable(table.title, table.columns, rows, table.note))
        except Exception as exc:  # noqa: BLE001 - reported in the table's place
            error = f"{type(exc).__name__}: {exc}"
            rendered.append(RenderedTable(table.title, table.columns, (), table.note, error))
    return rendered


def markdown(tables: Sequence[RenderedTable]) -> str:
    """The tables as Markdown sections ("" when there are none)."""
    lines: list[str] = []
    for table in tables:
        lines += [f"## {table.title}", ""]
        if table.error:
            lines += [f"Could not be built: {table.error}", ""]
            continue
        lines.append("| " + " | ".join(table.columns) + " |")
        lines.append("|" + "---|" * len(table.columns))
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines += ["", table.note, ""] if table.note else [""]
    return "\n".join(lines)
