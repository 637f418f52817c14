"""PNG plots for a run's report: one figure per quantity, every variant in it.

Layout ("auto"): when every variant's series has the same single label, the
variants are overlaid in one panel (one number compared across variants, e.g.
p99); otherwise each variant gets its own panel (rows of MAX_COLUMNS) on a shared
y axis, so equal heights mean equal values. Fault windows (`VariantResult.events`)
are shaded in every panel. Drawing uses matplotlib's Figure directly, never
pyplot: no display, nothing to close. A report draws its plots two at a time, in
forked processes (`render_all`).
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Lab, Plot, Series

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TIME_LABEL = "time since the first request (s)"
DPI = 110
PANEL_WIDTH_IN = 4.1
HEIGHT_IN = 3.4
ROW_HEIGHT_IN = 2.6
MAX_COLUMNS = 3
"""Variants per row: wider rows shrink the text below readable in the report."""
FAULT_COLOR = "#f4b183"
FIXED_COLORS = {
    "2xx": "#2ca02c",
    "3xx": "#1f77b4",
    "4xx": "#ff7f0e",
    "5xx": "#d62728",
    "no response": "#000000",
    "upstream retries": "#9467bd",
}
VARIANT_COLORS = {"broken": "#d62728", "fixed": "#2ca02c"}
LINE_STYLES = (
    {"lw": 2.6, "ls": "-"},
    {"lw": 1.8, "ls": "--"},
    {"lw": 2.0, "ls": ":"},
    {"lw": 1.4, "ls": "-."},
)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


Layout = Literal["auto", "overlay", "side"]
"""auto: overlay when every variant has the same single label (module docstring)."""


@dataclass(frozen=True)
class RenderedPlot:
    title: str
    filename: str
    png: bytes
    """Empty when the plot could not be drawn (see `error`)."""
    error: str = ""


def default_plots(results: Mapping[str, VariantResult]) -> list[tuple[Plot, Layout]]:
    """What every lab's report shows before its own plots: the clients' view by status
    class, then (where there is anything to see) errors by code, what the services
    answered, nginx's retries and error-log events; last, p99."""
    every = results.values()
    plots: list[tuple[Plot, Layout]] = [
        (Plot("Requests per second by status class", "requests/s", S.rate_by_class, "step"), "side")
    ]
    if any(r.failures for r in every):
        plots.append(
            (
                Plot("Errors per second by status code", "responses/s", S.rate_by_code, "step"),
                "side",
            )
        )
    if any(_has_values(S.service_responses(r)) for r in every):
        title = "Responses by status, as the services counted them (/metrics)"
        plots.append((Plot(title, "responses/s", S.service_responses, "step"), "side"))
    if any(_has_values(S.nginx_retries(r)) for r in every):
        title = "nginx: requests retried upstream (access log)"
        plots.append((Plot(title, "requests/s", S.nginx_retries, "step"), "auto"))
    if any(_has_values(S.nginx_errors(r)) for r in every):
        title = "nginx: error-log events by kind"
        plots.append((Plot(title, "events/s", S.nginx_errors, "step"), "side"))
    p99 = Plot("p99 latency seen by the clients", "p99 (ms)", lambda r: S.latency(r, (99,)))
    plots.append((p99, "auto"))
    return plots


RENDER_PROCESSES = 2
"""Drawing is CPU-bound matplotlib work, one plot independent of the next: the report
draws this many at once, in forked processes (it runs after the load, so the cores
are free)."""
_work: tuple[list[tuple[Plot, Layout]], Mapping[str, VariantResult]] | None = None
"""What a forked drawing process draws from (inherited through fork, never pickled:
a lab's series are arbitrary callables)."""


def render_all(
    lab: Lab, results: Mapping[str, VariantResult], processes: int = RENDER_PROCESSES
) -> list[RenderedPlot]:
    """The default plots, then the lab's own; a plot that fails is reported, not fatal."""
    jobs = [*default_plots(results), *((plot, "auto") for plot in lab.plots)]
    workers = min(processes, len(jobs), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_render_one(jobs, results, index) for index in range(len(jobs))]
    with ProcessPoolExecutor(
        workers, multiprocessing.get_context("fork"), initializer=_adopt, initargs=(jobs, results)
    ) as pool:
        return list(pool.map(_render_adopted, range(len(jobs))))


def _adopt(jobs: list[tuple[Plot, Layout]], results: Mapping[str, VariantResult]) -> None:
    global _work
    _work = (jobs, results)


def _render_adopted(index: int) -> RenderedPlot:
    assert _work is not None, "only a forked drawing process draws adopted plots"
    return _render_one(*_work, index)


def _render_one(
    jobs: Sequence[tuple[Plot, Layout]], results: Mapping[str, VariantResult], index: int
) -> RenderedPlot:
    plot, layout = jobs[index]
    filename = f"{index + 1:02d}-{_slug(plot.title)}.png"
    try:
        return RenderedPlot(plot.title, filename, render(plot, results, layout))
    except Exception as exc:  # a lab's series callable is arbitrary code
        return RenderedPlot(plot.title, filename, b"", f"{type(exc).__name__}: {exc}")


def render(plot: Plot, results: Mapping[str, VariantResult], layout: Layout = "auto") -> bytes:
    buffer = io.BytesIO()
    draw(plot, results, layout).savefig(buffer, format="png")
    return buffer.getvalue()


def draw(plot: Plot, results: Mapping[str, VariantResult], layout: Layout = "auto") -> Figure:
    """The figure `render` saves (its axes' texts include the fault phases' labels)."""
    per_variant = {name: dict(plot.series(result)) for name, result in results.items()}
    overlay = layout == "overlay" or (layout == "auto" and _overlaid(per_variant))
    x_max = _x_max(per_variant, results)
    figure, axes = _figure(1 if overlay else len(per_variant), overlay)
    colors = _colors(per_variant, overlay)
    if overlay:
        values = _draw_overlaid(axes[0], plot, per_variant, results, colors)
        _style(axes[0], plot.y_label, x_max, "", x_label=True)
    else:
        values = _draw_panels(axes, plot, per_variant, results, colors, x_max)
    _y_range(axes[0], values)
    figure.suptitle(plot.title, fontsize=12, fontweight="bold")
    _legend(figure, axes, plot, results)
    return figure


def _figure(panels: int, overlay: bool) -> tuple[Figure, list]:
    """One wide panel, or one per variant in balanced rows of at most MAX_COLUMNS,
    sharing y."""
    rows, columns = _grid(panels)
    width = PANEL_WIDTH_IN * (2 if overlay else columns)
    height = HEIGHT_IN + (rows - 1) * ROW_HEIGHT_IN
    from matplotlib.figure import Figure  # lazy: ~1 s to import, only reports draw

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    grid = figure.subplots(rows, columns, sharey=True, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _grid(panels: int) -> tuple[int, int]:
    """Rows and columns for `panels`, in balanced rows: 4 panels are 2 x 2, not 3 + 1."""
    rows = max(1, math.ceil(panels / MAX_COLUMNS))
    return rows, max(1, math.ceil(panels / rows))


def _draw_overlaid(
    ax,
    plot: Plot,
    per_variant: Mapping[str, Series],
    results: Mapping[str, VariantResult],
    colors: Mapping[str, str],
) -> list[float]:
    if plot.shade_faults:
        _shade(ax, sorted({w for r in results.values() for w in _rounded(S.fault_windows(r))}))
        _label_phases(ax, [p for r in results.values() for p in S.fault_labels(r)])
    values: list[float] = []
    for index, (name, variant_series) in enumerate(per_variant.items()):
        for xs, ys in variant_series.values():
            _draw(ax, plot.kind, xs, ys, name, colors[name], index)
            values.extend(float(y) for y in ys)
    return values


def _draw_panels(
    axes: Sequence,
    plot: Plot,
    per_variant: Mapping[str, Series],
    results: Mapping[str, VariantResult],
    colors: Mapping[str, str],
    x_max: float,
) -> list[float]:
    styles = {label: index for index, label in enumerate(colors)}
    columns = _grid(len(axes))[1]
    values: list[float] = []
    for index, (ax, (name, variant_series)) in enumerate(
        zip(axes, per_variant.items(), strict=True)
    ):
        if plot.shade_faults:
            _shade(ax, _rounded(S.fault_windows(results[name])))
            _label_phases(ax, S.fault_labels(results[name]))
        for label, (xs, ys) in variant_series.items():
            _draw(ax, plot.kind, xs, ys, label, colors[label], styles[label])
            values.extend(float(y) for y in ys)
        if not variant_series:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes,
                    fontsize=14, color="0.45")  # fmt: skip
        y_label = plot.y_label if index % columns == 0 else ""
        bottom = index + columns >= len(axes)  # nothing below it in its column
        _style(ax, y_label, x_max, _panel_title(results[name]), x_label=bottom)
    return values


def _x_max(per_variant: Mapping[str, Series], results: Mapping[str, VariantResult]) -> float:
    """The longest run, or the last point of a series that goes on past it."""
    ends = [r.duration_s for r in results.values()]
    ends += [max(xs) for s in per_variant.values() for xs, _ in s.values() if len(xs)]
    return max(ends, default=1.0) or 1.0


def _overlaid(per_variant: Mapping[str, Series]) -> bool:
    """Overlay when every variant has the same one label (e.g. "p99")."""
    labels = {tuple(s) for s in per_variant.values()}
    return len(labels) == 1 and len(next(iter(labels))) == 1


def _panel_title(result: VariantResult) -> str:
    return f"{result.variant}: {result.requests} requests, {result.failures} failed"


def _legend(
    figure: Figure, axes: Sequence, plot: Plot, results: Mapping[str, VariantResult]
) -> None:
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if _any_faults(plot, results):
        from matplotlib.patches import Patch

        handles["fault window"] = Patch(color=FAULT_COLOR, alpha=0.5)
    if handles:
        figure.legend(
            handles.values(), handles.keys(), loc="outside right upper", fontsize=9, frameon=False
        )


def _y_range(ax, values: Sequence[float]) -> None:
    """From 0 (these are rates, counts, latencies) to just above the largest value,
    on every shared panel at once; whole-number ticks for whole-number data."""
    finite = [v for v in values if not math.isnan(v)]
    top = max(finite, default=0.0)
    bottom = min(0.0, min(finite, default=0.0))
    ax.set_ylim(bottom, top * 1.08 if top > 0 else 1.0)
    if all(float(v).is_integer() for v in finite):
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _colors(per_variant: Mapping[str, Series], overlay: bool) -> dict[str, str]:
    """One colour per label, the same in every panel: status classes and the usual
    variant names keep their meaning (5xx and broken red, 2xx and fixed green)."""
    if overlay:
        labels, fixed = list(per_variant), VARIANT_COLORS
    else:
        labels, fixed = _unique(label for s in per_variant.values() for label in s), FIXED_COLORS
    colors = {label: fixed[label] for label in labels if label in fixed}
    if not overlay:  # status codes take their class's colour (502 red, 429 orange)
        for label in labels:
            code = label.rsplit(" ", 1)[-1]
            if code.isdigit() and (cls := f"{code[0]}xx") in FIXED_COLORS:
                colors.setdefault(label, FIXED_COLORS[cls])
    free = (c for c in PALETTE if c not in colors.values())
    for label in labels:
        colors.setdefault(label, next(free, "#7f7f7f"))
    return {label: colors[label] for label in labels}


def _draw(
    ax, kind: str, xs: Sequence[float], ys: Sequence[float], label: str, color: str, index: int
) -> None:
    """`index` picks the line style, so lines that coincide (a retry per reset) stay visible."""
    if len(xs) == 0:  # also for numpy arrays, whose truth value is ambiguous
        return
    step = _step(xs)
    style = LINE_STYLES[index % len(LINE_STYLES)]
    if kind == "bar":
        ax.bar(xs, ys, width=step * 0.9, align="edge", color=color, alpha=0.7, label=label)
    elif kind == "step":
        # A bucket's value holds from its start to the next bucket's start.
        ax.step([*xs, xs[-1] + step], [*ys, ys[-1]], where="post", color=color, label=label,
                **style)  # fmt: skip
    else:
        marker = "o" if len(xs) <= 60 else None
        ax.plot(xs, ys, color=color, marker=marker, ms=3.5, label=label, **style)


def _style(ax, y_label: str, x_max: float, title: str, x_label: bool) -> None:
    ax.set_xlim(0, math.ceil(x_max))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if x_label:
        ax.set_xlabel(TIME_LABEL)
    if y_label:
        ax.set_ylabel(y_label)
    if title:
        ax.set_title(title, fontsize=10.5)
    ax.grid(True, color="0.9", lw=0.8)
    ax.set_axisbelow(True)


def _shade(ax, windows: Sequence[tuple[float, float]]) -> None:
    for start, end in windows:
        ax.axvspan(start, end, color=FAULT_COLOR, alpha=0.5, lw=0, zorder=0)


def _label_phases(ax, phases: Sequence[tuple[float, str]]) -> None:
    """Name each fault phase at its start, at the top of the plot (once per time and
    label when variants are overlaid); every other label one line lower, so a short
    phase's label does not run into the next one's."""
    for index, (start, label) in enumerate(sorted({(round(t, 1), x) for t, x in phases})):
        ax.axvline(start, color="0.55", lw=0.6, ls=":", zorder=0)
        ax.text(start, 0.98 - 0.065 * (index % 2), f" {label}", transform=ax.get_xaxis_transform(),
                ha="left", va="top", fontsize=7.5, color="0.3", clip_on=True, zorder=5)  # fmt: skip


def _rounded(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Windows to 0.1 s, so variants with the same schedule shade once when overlaid."""
    return [(round(a, 1), round(b, 1)) for a, b in windows]


def _any_faults(plot: Plot, results: Mapping[str, VariantResult]) -> bool:
    return plot.shade_faults and any(S.fault_windows(r) for r in results.values())


def _step(xs: Sequence[float]) -> float:
    gaps = [b - a for a, b in zip(xs, xs[1:], strict=False) if b > a]
    return min(gaps) if gaps else 1.0


def _has_values(series: Series) -> bool:
    return any(any(y for y in ys if not math.isnan(y)) for _, ys in series.values())


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "plot"
