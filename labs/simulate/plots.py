"""PNG figures of the simulations, drawn like the reports' (matplotlib's Figure directly,
never pyplot; labs/engine/reporting/plots.py's palette and resolution)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from labs.engine.reporting.plots import DPI, PALETTE
from labs.simulate.overload import Boundary, OverloadParams
from labs.simulate.retries import STRATEGIES, RetrySummary

RATIO_COLORS = ("#d62728", "#f4b183", "#2ca02c")
"""stays down, in between, recovers."""


def retries_figure(summaries: Sequence[RetrySummary]) -> Figure:
    """Calls and time to the last success against N, one line per strategy (the mean over
    the runs; the bars span the lowest to the highest run)."""
    figure = Figure(figsize=(10.5, 4.2), dpi=DPI, layout="constrained")
    calls_ax, time_ax = figure.subplots(1, 2)
    strategies = [s for s in STRATEGIES if any(r.strategy == s for r in summaries)]
    for color, strategy in zip(PALETTE, strategies, strict=False):
        rows = sorted((r for r in summaries if r.strategy == strategy), key=lambda r: r.clients)
        n = [r.clients for r in rows]
        for ax, spreads in ((calls_ax, [r.calls for r in rows]),
                            (time_ax, [r.completion_s for r in rows])):  # fmt: skip
            mean = [s.mean for s in spreads]
            bars = [[s.mean - s.low for s in spreads], [s.high - s.mean for s in spreads]]
            ax.errorbar(n, mean, yerr=bars, color=color, marker="o", ms=4, capsize=3,
                        label=strategy)  # fmt: skip
    for ax, label in ((calls_ax, "calls (writes reaching the server)"),
                      (time_ax, "time until the last client succeeds (s)")):  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients (N)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    calls_ax.legend(fontsize=8)
    runs = summaries[0].runs if summaries else 0
    figure.suptitle(
        f"Optimistic concurrency under backoff strategies (mean of {runs} runs, bars: min-max)",
        fontsize=11,
        fontweight="bold",
    )
    return figure


def boundary_figure(boundary: Boundary, params: OverloadParams) -> Figure:
    """The goodput ratio (after / before) per trigger length and factor, colored by
    verdict: the hysteresis boundary is where red meets green."""
    figure = Figure(figsize=(7.5, 4.8), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    cmap = ListedColormap(list(RATIO_COLORS))
    norm = BoundaryNorm([0, params.stays_down, params.recovered, 1e9], cmap.N)
    image = ax.imshow(boundary.ratios, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(boundary.trigger_s)), [f"{d:g}" for d in boundary.trigger_s])
    ax.set_yticks(range(len(boundary.factors)), [f"x{k:g}" for k in boundary.factors])
    for i, row in enumerate(boundary.ratios):
        for j, ratio in enumerate(row):
            ax.text(j, i, f"{ratio:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("trigger length D (s)")
    ax.set_ylabel("trigger: work x k")
    bar = figure.colorbar(image, ax=ax, ticks=[0, params.stays_down, params.recovered])
    bar.set_label("goodput after / before")
    figure.suptitle(
        f"Recovers or stays down: {params.rate_per_s:g}/s into {params.workers} workers x "
        f"{params.work_ms:g} ms, timeout {params.timeout_s:g} s, {params.attempts} attempts",
        fontsize=10,
        fontweight="bold",
    )
    return figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
