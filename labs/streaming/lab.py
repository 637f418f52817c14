"""streaming: what a proxy does to Server-Sent Events and WebSocket streams.

The lab's verdicts over the typed numbers (`StreamNumbers`), its plots, and `LAB`. The
story and the variants are in scenario.py, the numbers in measure.py, the exercise in
exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import ratio_at_least
from labs.engine.model.spec import Check, Lab, Plot, Series
from labs.streaming.exercise import EXERCISE
from labs.streaming.measure import StreamNumbers, derive
from labs.streaming.scenario import (
    DELAY_FACTOR,
    LIVE_P99_MS,
    MIN_EVENTS,
    MIN_HANDSHAKES,
    MIN_QUIET_EVENTS,
    USERS,
    VARIANTS,
)

Results = Mapping[str, VariantResult]
Reading = Callable[[StreamNumbers], float]
Bound = tuple[str, Reading, float, float]
"""What is measured, how to read it, and the bounds it must lie within (inclusive)."""


def _n(result: VariantResult) -> StreamNumbers:
    return result.numbers(StreamNumbers)


def _shown(low: float, high: float) -> str:
    if low == high:
        return f"{low:g}"
    return f">= {low:g}" if math.isinf(high) else f"<= {high:g}" if math.isinf(low) else (
        f"{low:g} .. {high:g}")  # fmt: skip


def bounded(name: str, variant: str, bounds: tuple[Bound, ...], **twins: str) -> Check:
    """Every one of `bounds` holds on `variant`'s numbers; the check's number is the first."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _n(results[variant])
        values = [(what, read(n), low, high) for what, read, low, high in bounds]
        passed = all(low <= v <= high for _, v, low, high in values)
        measured = ", ".join(f"{what} {v:g}" for what, v, _, _ in values)
        expected = ", ".join(f"{_shown(low, high)}" for _, _, low, high in values)
        return passed, f"{variant}: {measured}; expected {expected}"

    return Check(
        name,
        evaluate,
        (variant,),
        twins=twins,
        measure=lambda results: bounds[0][1](_n(results[variant])),
    )


INF = math.inf
CHECKS = (
    ratio_at_least(
        "buffered_event_delay_10x_unbuffered",
        "buffered",
        "unbuffered",
        lambda r: _n(r).delay_p99_ms,
        DELAY_FACTOR,
        "p99 event delay, ms",
    ),
    bounded(
        "unbuffered_events_arrive_live",
        "unbuffered",
        (
            ("p99 event delay ms", lambda n: n.delay_p99_ms, 0, LIVE_P99_MS),
            ("events", lambda n: n.events, MIN_EVENTS, INF),
        ),
    ),
    bounded(
        "idle_timeout_cuts_every_subscriber",
        "idle-timeout",
        (
            ("fewest cuts a subscriber saw", lambda n: n.fewest_cuts, 1, INF),
            ("subscribers", lambda n: n.subscribers, USERS, USERS),
        ),
    ),
    bounded(
        "heartbeat_cuts_no_stream",
        "heartbeat",
        (
            ("cuts", lambda n: n.cuts, 0, 0),
            ("events", lambda n: n.events, MIN_QUIET_EVENTS, INF),
        ),
    ),
    bounded(
        "idle_timeout_resumes_without_losing_an_event",
        "idle-timeout",
        (
            ("events lost", lambda n: n.lost, 0, 0),
            ("duplicates", lambda n: n.duplicates, 0, 0),
            ("reconnects with Last-Event-ID", lambda n: n.resumed, USERS, INF),
        ),
        **{"idle-timeout": "no-resume"},
    ),
    bounded(
        "no_resume_loses_events",
        "no-resume",
        (
            ("events lost", lambda n: n.lost, USERS, INF),
            ("cuts", lambda n: n.cuts, USERS, INF),
        ),
    ),
    bounded(
        "websocket_no_upgrade_fails_every_handshake",
        "websocket-no-upgrade",
        (
            ("handshakes that succeeded", lambda n: n.handshakes_ok, 0, 0),
            ("handshakes refused", lambda n: n.handshakes_failed, MIN_HANDSHAKES, INF),
        ),
    ),
    bounded(
        "websocket_handshakes_all_succeed",
        "websocket",
        (
            ("handshakes refused", lambda n: n.handshakes_failed, 0, 0),
            ("handshakes that succeeded", lambda n: n.handshakes_ok, MIN_HANDSHAKES, INF),
            ("messages", lambda n: n.events, MIN_EVENTS, INF),
        ),
    ),
)


def delay_series(result: VariantResult) -> Series:
    xs, ys = _n(result).delay_p99
    return {"p99 event delay": (xs, ys)}


def reconnect_series(result: VariantResult) -> Series:
    xs, ys = _n(result).reconnects
    return {"reconnects after a cut": (xs, ys)}


LAB = Lab(
    name="streaming",
    title="Streaming through a proxy: buffering, idle timeouts, WebSocket upgrades",
    question="What does nginx do to a Server-Sent Events or WebSocket stream, and which "
    "settings let a live feed through?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "extra.events",
        "extra.delay_p50_ms",
        "extra.delay_p99_ms",
        "extra.cuts",
        "extra.resumed",
        "extra.lost",
        "extra.peak_reconnects_per_s",
        "extra.handshakes_ok",
        "extra.handshakes_failed",
    ),
    parallel_variants=True,
    derive=derive,
    plots=(
        Plot("p99 event delay per second (by arrival)", "ms", delay_series, shade_faults=False),
        Plot("Reconnects after a cut", "per second", reconnect_series, "bar", shade_faults=False),
    ),
    exercise=EXERCISE,
)
