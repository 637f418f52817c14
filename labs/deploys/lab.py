"""deploys: big bang, blue-green, canary with an automatic gate, and slow start for a cold
replica, all through nginx reloads under steady load.

The lab: its checks over the numbers in measure.py (from the clients' records and the
rollout's events) of the variants in scenario.py, and `LAB`. The rollout controller
is rollout.py; the exercise is exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from labs.deploys.exercise import EXERCISE
from labs.deploys.measure import DeploysNumbers, derive
from labs.deploys.scenario import (
    CANARY_SHARE_OF_BIG_BANG,
    GATE_INTERVAL_S,
    MIN_GAP_FAILURES,
    MIN_REQUESTS,
    MIN_SPIKE_MS,
    RAMP_P99_RATIO,
    RELOAD_ALLOWANCE_S,
    SPIKE_WINDOW_S,
    VARIANTS,
)
from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.stats import items, number
from labs.engine.model.spec import Check, Lab, Plot, Series, Table


def numbers(results: Mapping[str, VariantResult], variant: str) -> DeploysNumbers:
    return results[variant].numbers(DeploysNumbers)


def gap_reproduced(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = numbers(results, variant)
        return n.proxy_failed >= MIN_GAP_FAILURES, (
            f"{variant}: {n.proxy_failed} of {n.requests} requests failed in nginx "
            f"(502/503/504 or no answer) while no release listened, expected >= "
            f"{MIN_GAP_FAILURES}"
        )

    return Check(
        f"{variant}_fails_requests_in_the_gap".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: numbers(results, variant).proxy_failed,
    )


def reloads_fail_nothing(variant: str) -> Check:
    """Every flip is a reload: 0 requests failed by nginx, over enough requests, with the
    reloads done (a run without them would prove nothing)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = numbers(results, variant)
        passed = n.proxy_failed == 0 and n.reloads >= 2 and n.requests >= MIN_REQUESTS
        return passed, (
            f"{variant}: {n.proxy_failed} of {n.requests} requests failed in nginx over "
            f"{n.reloads} reloads, expected 0 over >= 2 reloads and >= {MIN_REQUESTS} requests"
        )

    return Check(
        f"{variant}_reloads_fail_no_request".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: numbers(results, variant).proxy_failed,
    )


def canary_limits_the_bad_release(canary: str, big_bang: str) -> Check:
    def share(results: Mapping[str, VariantResult]) -> float:
        failed = numbers(results, big_bang).failed
        return numbers(results, canary).failed / failed if failed else math.inf

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        c, b = numbers(results, canary), numbers(results, big_bang)
        limit = CANARY_SHARE_OF_BIG_BANG * b.failed
        passed = c.failed <= limit and b.failed >= MIN_GAP_FAILURES
        return passed, (
            f"failed requests: {canary} {c.failed} vs {big_bang} {b.failed} "
            f"({share(results):.3f}x), expected {canary} <= {CANARY_SHARE_OF_BIG_BANG:g} x "
            f"{big_bang} = {limit:g}"
        )

    return Check(
        "canary_limits_the_bad_release",
        evaluate,
        (canary, big_bang),
        twins={big_bang: ""},
        measure=share,
    )


def rolls_back_in_time(variant: str) -> Check:
    limit = GATE_INTERVAL_S + RELOAD_ALLOWANCE_S

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = numbers(results, variant)
        passed = n.rollback_lag_s <= limit and n.v2_failed > 0
        return passed, (
            f"{variant}: v2's error rate crossed the gate's threshold at {n.crossing_s:g} s, "
            f"its last request started at {n.last_v2_s:g} s: {n.rollback_lag_s:g} s later, "
            f"expected <= {limit:g} s (one {GATE_INTERVAL_S:g} s gate interval + "
            f"{RELOAD_ALLOWANCE_S:g} s to read the stats and reload)"
        )

    return Check(
        f"{variant}_rolls_back_within_a_gate_interval".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: numbers(results, variant).rollback_lag_s,
    )


def cold_start_spikes(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = numbers(results, variant)
        return n.p99_window_ms >= MIN_SPIKE_MS, (
            f"{variant}: p99 {n.p99_window_ms:g} ms over the {SPIKE_WINDOW_S:g} s after the "
            f"deploy, expected >= {MIN_SPIKE_MS:g} ms"
        )

    return Check(
        f"{variant}_p99_spikes".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: numbers(results, variant).p99_window_ms,
    )


def ramp_removes_the_spike(ramped: str, full: str) -> Check:
    def ratio(results: Mapping[str, VariantResult]) -> float:
        return numbers(results, ramped).p99_window_ms / numbers(results, full).p99_window_ms

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r, f = numbers(results, ramped), numbers(results, full)
        limit = RAMP_P99_RATIO * f.p99_window_ms
        return r.p99_window_ms <= limit, (
            f"p99 over the {SPIKE_WINDOW_S:g} s after the deploy: {ramped} "
            f"{r.p99_window_ms:g} ms vs {full} {f.p99_window_ms:g} ms ({ratio(results):.2f}x), "
            f"expected {ramped} <= {RAMP_P99_RATIO:g} x {full} = {limit:g} ms"
        )

    return Check("ramp_removes_the_cold_start_spike", evaluate, (ramped, full), measure=ratio)


def v2_share(result: VariantResult) -> Series:
    """v2's weight share in % over time, from the rollout's reloads."""
    xs, ys = [0.0], [0.0]
    for event in result.events:
        weights = items(event.get("weights"))
        if event.get("action") == "weights" and len(weights) == 2:
            xs.append(number(event.get("t_s")))
            ys.append(100 * number(weights[1]) / max(1.0, sum(number(w) for w in weights)))
    return {"v2 share %": ([*xs, result.duration_s], [*ys, ys[-1]])}


def decision_rows(results: Mapping[str, VariantResult]) -> Sequence[Sequence[str]]:
    rows = []
    for name, result in results.items():
        n = result.numbers(DeploysNumbers)
        rows += [(name, *line.split(": ", 1)) for line in n.decisions]
    return rows


LAB = Lab(
    name="deploys",
    title="Deploys: big bang, blue-green, canary with a gate, slow start",
    question="How do you ship a new release under load without failing requests, and "
    "keep a bad one away from most users?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        gap_reproduced("big-bang"),
        reloads_fail_nothing("blue-green"),
        reloads_fail_nothing("canary"),
        canary_limits_the_bad_release("canary", "big-bang"),
        rolls_back_in_time("canary"),
        rolls_back_in_time("blue-green"),
        cold_start_spikes("cold-start-full"),
        ramp_removes_the_spike("cold-start-ramped", "cold-start-full"),
    ),
    key_metrics=(
        "requests",
        "extra.failed",
        "extra.proxy_failed",
        "extra.v2_answers",
        "extra.reloads",
        "extra.rollback_lag_s",
        "extra.p99_window_ms",
    ),
    derive=derive,
    plots=(Plot("v2's share of nginx's weights", "%", v2_share, kind="step"),),
    tables=(
        Table(
            "Rollout decisions",
            ("variant", "t (s after the first request)", "decision"),
            decision_rows,
            note="Each reload (new nginx weights), stop, start and gate reading the "
            "controller (labs/deploys/rollout.py) made, in order.",
        ),
    ),
    exercise=EXERCISE,
)
