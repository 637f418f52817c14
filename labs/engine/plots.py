"""PNG plots for a run's report: one figure per quantity, every variant in it.

Layout rule: when each variant's series has a single label, the variants are
overlaid in one panel (compare one number across variants, e.g. p99); when a
series has several labels (2xx / 5xx, retries / resets) each variant gets its
own panel, side by side on a shared y axis, so equal heights mean equal values.
Fault windows (from `VariantResult.events`) are shaded in every panel.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display; must precede any pyplot import anywhere

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from labs.engine import series as S  # noqa: E402
from labs.engine.metrics import VariantResult  # noqa: E402
from labs.engine.spec import Lab, Plot, Series  # noqa: E402

TIME_LABEL = "time since the first request (s)"
DPI = 110
PANEL_WIDTH_IN = 4.6
HEIGHT_IN = 3.4
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
    {"lw": 1.6, "ls": ":"},
    {"lw": 1.4, "ls": "-."},
)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class RenderedPlot:
    title: str
    filename: str
    png: bytes
    """Empty when the plot could not be drawn (see `error`)."""
    error: str = ""


def default_plots(results: Mapping[str, VariantResult]) -> list[Plot]:
    """What every lab's report shows before its own plots: traffic by status class,
    errors by code and nginx's retries and resets (when there are any), p99."""
    plots = [Plot("Requests per second by status class", "requests/s", S.rate_by_class, "step")]
    if any(r.failures for r in results.values()):
        plots.append(
            Plot("Errors per second by status code", "responses/s", S.rate_by_code, "step")
        )
    if any(_has_values(S.nginx_events(r)) for r in results.values()):
        plots.append(
            Plot("nginx: upstream retries and error-log events", "events/s", S.nginx_events, "step")
        )
    plots.append(
        Plot("p99 latency (1 s buckets)", "p99 (ms)", lambda r: S.latency(r, (99,)), "line")
    )
    return plots


def render_all(lab: Lab, results: Mapping[str, VariantResult]) -> list[RenderedPlot]:
    """The default plots, then the lab's own; a plot that fails is reported, not fatal."""
    rendered = []
    for index, plot in enumerate([*default_plots(results), *lab.plots], start=1):
        filename = f"{index:02d}-{_slug(plot.title)}.png"
        try:
            png = render(plot, results)
        except Exception as exc:  # a lab's series callable is arbitrary code
            rendered.append(RenderedPlot(plot.title, filename, b"", f"{type(exc).__name__}: {exc}"))
            continue
        rendered.append(RenderedPlot(plot.title, filename, png))
    return rendered


def render(plot: Plot, results: Mapping[str, VariantResult]) -> bytes:
    per_variant = {name: dict(plot.series(result)) for name, result in results.items()}
    overlay = _overlaid(per_variant)
    x_max = max((r.duration_s for r in results.values()), default=1.0) or 1.0
    columns = 1 if overlay else max(1, len(per_variant))
    width = PANEL_WIDTH_IN * 2 if overlay else PANEL_WIDTH_IN * columns
    figure = Figure(figsize=(width, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = list(figure.subplots(1, columns, sharey=True, squeeze=False)[0])
    colors = _colors(per_variant, overlay)
    values: list[float] = []
    if overlay:
        windows = sorted({w for r in results.values() for w in _rounded(S.fault_windows(r))})
        if plot.shade_faults:
            _shade(axes[0], windows)
        for index, (name, variant_series) in enumerate(per_variant.items()):
            for xs, ys in variant_series.values():
                _draw(axes[0], plot.kind, xs, ys, name, colors[name], index)
                values += ys
        _style(axes[0], plot.y_label, x_max, "")
    else:
        styles = {label: index for index, label in enumerate(colors)}
        for ax, (name, variant_series) in zip(axes, per_variant.items(), strict=True):
            if plot.shade_faults:
                _shade(ax, _rounded(S.fault_windows(results[name])))
            for label, (xs, ys) in variant_series.items():
                _draw(ax, plot.kind, xs, ys, label, colors[label], styles[label])
                values += ys
            if not variant_series:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes,
                        fontsize=14, color="0.45")  # fmt: skip
            _style(ax, plot.y_label if ax is axes[0] else "", x_max, _panel_title(results[name]))
    _y_range(axes[0], values)
    figure.suptitle(plot.title, fontsize=12, fontweight="bold")
    _legend(figure, axes, plot, results)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
            if label.isdigit() and (cls := f"{label[0]}xx") in FIXED_COLORS:
                colors.setdefault(label, FIXED_COLORS[cls])
    free = (c for c in PALETTE if c not in colors.values())
    for label in labels:
        colors.setdefault(label, next(free, "#7f7f7f"))
    return {label: colors[label] for label in labels}


def _draw(
    ax, kind: str, xs: Sequence[float], ys: Sequence[float], label: str, color: str, index: int
) -> None:
    """`index` picks the line style, so lines that coincide (a retry per reset) stay visible."""
    if not xs:
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


def _style(ax, y_label: str, x_max: float, title: str) -> None:
    ax.set_xlim(0, math.ceil(x_max))
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
