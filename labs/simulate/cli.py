"""`lab simulate retries|overload`: run a model, print a table (or one JSON document with
--json), draw its figure.

    lab simulate retries --clients 10,100,1000 --runs 10
    lab simulate overload --variant broken --trigger 2
    lab simulate overload --sweep --triggers 1,2,3,4,5,6 --factors 1.5,2,3,4,6

Progress goes to stderr; bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from labs.engine.errors import LabError

if TYPE_CHECKING:
    from labs.simulate.overload import OverloadParams

MAX_CLIENTS, MAX_RUNS = 10_000, 100
MAX_SWEEP_CELLS = 400
DEFAULT_CLIENTS = "10,30,100,300,1000,3000,10000"
DEFAULT_RUNS = 5
DEFAULT_TRIGGERS = "0.5,1,1.5,2,2.5,3,4,5,6"
DEFAULT_FACTORS = "1.5,2,2.5,3,4,5,6"


def _numbers(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], list]:
    """A comma-separated list of numbers, each in [low, high]."""

    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
        bad = [v for v in values if not (math.isfinite(v) and low <= v <= high)]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"each must be {low:g}..{high:g}, got {text!r}")
        return values

    return parse


def _one(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    many = _numbers(kind, low, high)

    def parse(text: str) -> float:
        values = many(text)
        if len(values) != 1:
            raise argparse.ArgumentTypeError(f"one number, got {text!r}")
        return values[0]

    return parse


def add_parser(commands: argparse._SubParsersAction) -> None:
    from labs.simulate.retries import STRATEGIES

    simulate = commands.add_parser(
        "simulate", help="discrete-event models: backoff under contention, overload recovery"
    )
    models = simulate.add_subparsers(dest="model", metavar="MODEL", required=True)

    retries = models.add_parser("retries", help="optimistic concurrency under 5 backoff strategies")
    retries.add_argument(
        "--clients",
        type=_numbers(int, 1, MAX_CLIENTS),
        default=_numbers(int, 1, MAX_CLIENTS)(DEFAULT_CLIENTS),
        help=f"N, comma-separated (default {DEFAULT_CLIENTS}; at most {MAX_CLIENTS:,})",
    )
    retries.add_argument(
        "--runs",
        type=_one(int, 1, MAX_RUNS),
        default=DEFAULT_RUNS,
        help=f"runs per N (default {DEFAULT_RUNS}; the defaults take minutes: none at N = "
        "10,000 makes ~17 million calls a run)",
    )
    retries.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        help="only this strategy (repeatable; default all five)",
    )
    common(retries)
    retries.set_defaults(handler=cmd_retries)

    overload = models.add_parser("overload", help="recovers or not: the overload lab's queue")
    overload.add_argument(
        "--variant",
        default="broken",
        help="the overload lab's variant to start from (default broken)",
    )
    for flag, kind, low, high, what in (
        ("--rate", float, 0.001, 1e6, "new requests per second"),
        ("--workers", int, 1, 100_000, "workers"),
        ("--work-ms", float, 0.001, 60_000, "one request's work (ms)"),
        ("--timeout", float, 0.001, 3600, "an attempt's timeout (s)"),
        ("--attempts", int, 1, 100, "attempts per request, the first included"),
        ("--factor", float, 1, 1000, "the trigger: work x k"),
        ("--trigger", float, 0, 3600, "the trigger's length D (s)"),
        ("--arrivals", float, 1, 3600, "seconds of arrivals"),
        ("--queue-limit", int, 0, 10_000_000, "at most this many wait (0: no limit)"),
        ("--seed", int, 0, 2**31, "the arrivals' seed"),
    ):
        overload.add_argument(
            flag, type=_one(kind, low, high), help=f"{what} (default: the variant's)"
        )
    overload.add_argument("--queue", choices=("fifo", "lifo"), help="queue order")
    for flag, what in (
        ("--shed-expired", "drop a waiting request whose client timed out"),
        ("--retry-budget", "gRPC's retry budget (10 tokens, 0.1 per success)"),
        ("--throttle", "SRE adaptive client throttling"),
        ("--adaptive-limit", "a gateway with an AIMD concurrency limit (the lab's settings)"),
    ):
        overload.add_argument(flag, choices=("on", "off"), help=what)
    overload.add_argument(
        "--sweep", action="store_true", help="sweep trigger length x factor: the heat map"
    )
    overload.add_argument(
        "--triggers",
        type=_numbers(float, 0, 3600),
        default=_numbers(float, 0, 3600)(DEFAULT_TRIGGERS),
        help=f"--sweep's trigger lengths (default {DEFAULT_TRIGGERS})",
    )
    overload.add_argument(
        "--factors",
        type=_numbers(float, 1, 1000),
        default=_numbers(float, 1, 1000)(DEFAULT_FACTORS),
        help=f"--sweep's factors (default {DEFAULT_FACTORS})",
    )
    common(overload)
    overload.set_defaults(handler=cmd_overload)


def common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    sub.add_argument(
        "--plot",
        type=Path,
        help="where the PNG goes (default results/simulate/<model>.png)",
    )
    sub.add_argument("--no-plot", action="store_true", help="draw nothing")


def progress(line: str) -> None:
    sys.stderr.write(f"lab simulate: {line}\n")
    sys.stderr.flush()


def cmd_retries(args: argparse.Namespace) -> int:
    from labs.simulate import plots
    from labs.simulate.retries import STRATEGIES, sweep

    strategies = [s for s in STRATEGIES if s in (args.strategy or STRATEGIES)]
    started = time.perf_counter()
    summaries = sweep(strategies, sorted(set(args.clients)), args.runs, progress=progress)
    elapsed = time.perf_counter() - started
    plot = None if args.no_plot else args.plot or Path("results/simulate/retries.png")
    if plot is not None:
        plots.save(plots.retries_figure(summaries), plot)
    if args.json:
        document = {
            "model": "retries",
            "runs": args.runs,
            "seconds": round(elapsed, 3),
            "plot": str(plot) if plot else None,
            "results": [asdict(s) for s in summaries],
        }
        print(json.dumps(document))
        return 0
    print(f"{'strategy':<20} {'N':>6} {'calls (mean ± sd)':>24} {'calls/N':>8} "
          f"{'last success s (mean ± sd)':>28}")  # fmt: skip
    for s in summaries:
        calls = f"{s.calls.mean:,.0f} ± {s.calls.sd:,.0f}"
        done = f"{s.completion_s.mean:,.2f} ± {s.completion_s.sd:,.2f}"
        print(f"{s.strategy:<20} {s.clients:>6} {calls:>24} {s.calls_per_client:>8.1f} {done:>28}")
    print(f"{args.runs} runs per N, {elapsed:.1f} s" + (f"; plot: {plot}" if plot else ""))
    return 0


def overload_params(args: argparse.Namespace) -> OverloadParams:
    """The variant's parameters with the command line's changes; LabError if invalid."""
    from labs.simulate.overload_lab import NOT_MODELLED, lab_params

    variants = lab_params()
    if args.variant not in variants:
        why = f" ({NOT_MODELLED[args.variant]})" if args.variant in NOT_MODELLED else ""
        raise LabError(
            f"no modelled overload variant {args.variant!r}{why}; one of {', '.join(variants)}"
        )
    params = replace(variants[args.variant], **_changes(args))
    if args.adaptive_limit is not None:
        gateway = variants["adaptive-limit"].gateway if args.adaptive_limit == "on" else None
        params = replace(params, gateway=gateway)
    try:
        params.check()
        if args.sweep:
            cells = len(args.triggers) * len(args.factors)
            if cells > MAX_SWEEP_CELLS:
                raise ValueError(f"a sweep of {cells} cells (at most {MAX_SWEEP_CELLS})")
            for d in args.triggers:
                replace(params, trigger_s=d).check()
    except ValueError as exc:
        raise LabError(str(exc)) from None
    return params


def _changes(args: argparse.Namespace) -> dict[str, object]:
    """OverloadParams' fields the command line sets."""
    switches = {"shed_expired": args.shed_expired, "retry_budget": args.retry_budget,
                "throttle": args.throttle}  # fmt: skip
    values = {
        "rate_per_s": args.rate,
        "workers": args.workers,
        "work_ms": args.work_ms,
        "timeout_s": args.timeout,
        "attempts": args.attempts,
        "factor": args.factor,
        "trigger_s": args.trigger,
        "arrivals_s": args.arrivals,
        "queue_limit": args.queue_limit,
        "seed": args.seed,
        "queue": args.queue,
        **{k: None if v is None else v == "on" for k, v in switches.items()},
    }
    return {k: v for k, v in values.items() if v is not None}


def cmd_overload(args: argparse.Namespace) -> int:
    params = overload_params(args)
    return _sweep(args, params) if args.sweep else _run(args, params)


def _run(args: argparse.Namespace, params: OverloadParams) -> int:
    from labs.simulate.overload import simulate

    started = time.perf_counter()
    slow = params.rate_per_s * params.arrivals_s > 200_000
    run = simulate(params, (lambda t: progress(f"overload: {t:.0f} s simulated")) if slow else None)
    elapsed = round(time.perf_counter() - started, 3)
    if args.json:
        print(json.dumps({"model": "overload", "variant": args.variant, "seconds": elapsed,
                          **asdict(run)}))  # fmt: skip
        return 0
    changes = _changes(args) | (
        {"adaptive_limit": args.adaptive_limit} if args.adaptive_limit else {}
    )
    changed = ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing"
    print(
        f"{args.variant} ({changed} changed): {run.verdict}; goodput before "
        f"{run.goodput_before:.2f} of new requests, after {run.goodput_after:.2f} (ratio "
        f"{run.goodput_ratio:.2f}); {run.requests:,} requests, {run.attempts:,} attempts, "
        f"{run.api_late:,} answered too late, {run.shed:,} shed, {run.throttled:,} throttled"
    )
    return 0


def _sweep(args: argparse.Namespace, params: OverloadParams) -> int:
    from labs.simulate import plots
    from labs.simulate.overload import sweep

    started = time.perf_counter()
    boundary = sweep(params, tuple(args.triggers), tuple(args.factors), progress)
    elapsed = round(time.perf_counter() - started, 3)
    plot = None if args.no_plot else args.plot or Path("results/simulate/overload.png")
    if plot is not None:
        plots.save(plots.boundary_figure(boundary, params), plot)
    if args.json:
        print(json.dumps({"model": "overload", "variant": args.variant, "seconds": elapsed,
                          "plot": str(plot) if plot else None, "params": asdict(params),
                          "boundary": asdict(boundary)}))  # fmt: skip
        return 0
    width = max(6, *(len(f"{d:g}") + 2 for d in boundary.trigger_s))
    print("goodput after / before; rows: work x k, columns: trigger length D (s)")
    print(f"{'':>7}" + "".join(f"{d:>{width}g}" for d in boundary.trigger_s))
    for factor, row in zip(boundary.factors, boundary.ratios, strict=True):
        print(f"{'x' + format(factor, 'g'):>7}" + "".join(f"{r:>{width}.2f}" for r in row))
    print(f"{elapsed:.1f} s" + (f"; plot: {plot}" if plot else ""))
    return 0
