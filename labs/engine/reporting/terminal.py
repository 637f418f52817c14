"""What `lab` prints on a terminal of any width: nothing cut, nothing dropped.

Prose wraps at the terminal's width; code (commands, log lines, timelines) runs long,
as it would in a pager, so that a line can be copied whole; table cells wrap, and a
word longer than its column folds onto the next line instead of ending in "…".
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import CodeBlock, Markdown, TableElement
from rich.markup import escape
from rich.segment import Segment
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Lab
from labs.engine.runner import RunOutcome

CODE_INDENT = "    "
VERDICT_COLOURS = {"PASS": "green", "FAIL": "red", "DEFECT": "red", "NOT JUDGED": "yellow"}


class LongCodeBlock(CodeBlock):
    """A fenced code block whose lines are never wrapped nor cropped: each line is
    printed whole (highlighted, indented), however wide the terminal."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        code = str(self.text).rstrip()
        syntax = Syntax(code, self.lexer_name, theme=self.theme, background_color="default")
        highlighted = syntax.highlight(code)
        highlighted.rstrip()
        for line in highlighted.split("\n", allow_blank=True):
            yield Segment(CODE_INDENT)
            yield from line.render(console)
            yield Segment.line()


class FoldingTable(TableElement):
    """A Markdown table whose cells wrap, and fold a word too long for its column."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for table in super().__rich_console__(console, options):
            if isinstance(table, Table):
                for column in table.columns:
                    column.overflow = "fold"
            yield table


class Guide(Markdown):
    """Markdown for a terminal: prose wraps, code runs long, tables fold."""

    elements = {
        **Markdown.elements,
        "fence": LongCodeBlock,
        "code_block": LongCodeBlock,
        "table_open": FoldingTable,
    }


def print_guide(console: Console, text: str) -> None:
    """Print a guide: wrapped at the console's width, but never cropped (code lines
    longer than the width run on, and the terminal shows them whole)."""
    console.print(Guide(text, justify="default"), soft_wrap=False, crop=False)


# --- the summary of runs ---------------------------------------------------------------


def number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def metric_text(result: VariantResult, key: str) -> str:
    """`name=value` for the summary (`n/a` when the variant did not measure it)."""
    try:
        value = number(result.metric(key))
    except (KeyError, AttributeError):
        value = "n/a"
    return f"{key.split('.', 1)[-1]}={value}"


def numbers_table(outcome: RunOutcome) -> Table:
    """One row per variant, its key numbers as `name=value` words that wrap between
    words (a word that cannot fit folds: no number is ever cut)."""
    verdict = "PASS" if outcome.passed else "FAIL"
    colour = VERDICT_COLOURS[verdict]
    table = Table(
        title=f"[bold]{escape(outcome.lab.name)}[/]: [{colour}]{verdict}[/]",
        title_justify="left",
        expand=False,
    )
    table.add_column("variant", no_wrap=True)
    table.add_column("key numbers", overflow="fold")
    for name, result in outcome.results.items():
        words = [metric_text(result, key) for key in outcome.lab.key_metrics]
        table.add_row(escape(name), escape("  ".join(words)))
    return table


def checks_table(outcome: RunOutcome) -> Table:
    """One row per check: its verdict beside it, then what was measured, wrapped."""
    table = Table(expand=False, show_lines=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column(f"{escape(outcome.lab.name)} check: what was measured", overflow="fold")
    for check in outcome.checks:
        colour = VERDICT_COLOURS[check.verdict]
        line = check.line(outcome.lab.name)  # the detail, and a defect's proof
        detail = line[len(f"{check.verdict} {outcome.lab.name}/{check.name}: ") :]
        table.add_row(
            f"[{colour}]{check.verdict}[/]", f"[bold]{escape(check.name)}[/]\n{escape(detail)}"
        )
    return table


def summary(outcomes: Sequence[RunOutcome]) -> RenderableType:
    """Per lab: the variants' key numbers, then each check with its own verdict."""
    parts: list[RenderableType] = []
    for outcome in outcomes:
        parts += [numbers_table(outcome), checks_table(outcome), Text()]
    return Group(*parts)


def next_steps(lab: Lab, more: Sequence[tuple[str, str]] = ()) -> str:
    """What to try after the demo: one command a line, with what it does."""
    broken = lab.exercise.broken if lab.exercise else lab.variants[0].name
    commands = [
        ("lab list", "every lab and the question it answers"),
        (f"lab show {lab.name}", "the guide: why it happens, the fix"),
        (f"lab up {lab.name} --variant {broken}", "keep it up, poke it by hand"),
        (f"lab exercise {lab.name}", "fix it yourself, then `lab grade`"),
        (f"lab report {lab.name}", "its runs, the newest report.html last"),
        *more,
    ]
    width = max(len(command) for command, _ in commands)
    lines = [f"  {command:<{width}}  # {why}" for command, why in commands]
    return "Next, try:\n" + "\n".join(lines)
