"""report.html: one self-contained page per run (plots embedded as data URIs), so
it can be mailed, attached to a CI run or opened from a laptop without the
results folder next to it."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Lab
from labs.engine.model.verdicts import CheckResult, all_ok
from labs.engine.reporting import tables
from labs.engine.reporting.plots import RenderedPlot

TEMPLATE = "report.html.j2"
LATENCY_KEYS = ("p50_ms", "p95_ms", "p99_ms")

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# CommonMark with tables; raw HTML in a guide is shown as text, never run.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def guide_html(text: str) -> str:
    return _markdown.render(text)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def metric_columns(lab: Lab) -> list[str]:
    """The lab's key numbers, without the ones the table always shows."""
    always = ("requests", *LATENCY_KEYS)
    return ["requests", *(k for k in lab.key_metrics if k not in always)]


def render(
    lab: Lab,
    results: Mapping[str, VariantResult],
    checks: Sequence[CheckResult],
    plots: Sequence[RenderedPlot],
    results_dir: str,
    created: str,
) -> str:
    columns = metric_columns(lab)
    rows = [
        {
            "name": name,
            "summary": lab.variant(name).summary,
            "metrics": [_metric(result, key) for key in columns],
            "status": result.status,
            "latency": [f"{getattr(result, key):.1f}" for key in LATENCY_KEYS],
            "nginx_errors": result.nginx_errors,
        }
        for name, result in results.items()
    ]
    return _environment.get_template(TEMPLATE).render(
        lab=lab,
        passed=all_ok(list(checks)),
        checks=checks,
        columns=[c.split(".", 1)[-1].replace("_", " ") for c in columns],
        rows=rows,
        plots=[
            {"title": p.title, "src": data_uri(p.png) if p.png else "", "error": p.error}
            for p in plots
        ],
        tables=tables.render_all(lab, results),
        guide=guide_html(lab.guide.read_text()) if lab.guide.is_file() else "",
        results_dir=results_dir,
        created=created,
    )


def _metric(result: VariantResult, key: str) -> str:
    try:
        return _fmt(result.metric(key))
    except (KeyError, AttributeError):  # e.g. a lab's derive hook left it out
        return "-"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.1f}"
    return str(value)
