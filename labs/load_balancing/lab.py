"""load-balancing: which algorithm copes with a slow replica, and what nginx's passive
health checks do when one dies and comes back.

The lab's verdicts over the typed numbers (`LoadBalancingNumbers`), its plots, and `LAB`.
The story and the variants are in scenario.py, the numbers in measure.py (keys.py for
where the hash variants' keys live), the exercise in exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import ratio_at_least
from labs.engine.model.spec import Check, Lab, Plot, Series
from labs.load_balancing.exercise import EXERCISE
from labs.load_balancing.measure import LoadBalancingNumbers, PhaseNumbers, derive
from labs.load_balancing.scenario import (
    BALANCERS,
    ERRORS_STOP_WITHIN_S,
    FAIL_TIMEOUT_S,
    MAX_KEYS_MOVED_PCT,
    MAX_LATENCY_RATIO,
    MAX_SHARE_RATIO,
    MIN_KEYS_COMPARED,
    MIN_PLAIN_MOVED_PCT,
    MIN_SLOW_PHASE_REQUESTS,
    REJOINS_WITHIN_S,
    SLOW,
    SLOW_FACTOR,
    USERS,
    VARIANTS,
)

Results = Mapping[str, VariantResult]


def _numbers(results: Results, variant: str) -> LoadBalancingNumbers:
    return results[variant].numbers(LoadBalancingNumbers)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


# --- checks ----------------------------------------------------------------------------------


def faster_than_round_robin(variant: str, baseline: str = "round-robin") -> Check:
    """With one replica slow, mean and p90 at most MAX_LATENCY_RATIO x round robin's."""

    def ratios(results: Results) -> tuple[float, float]:
        n, base = _numbers(results, variant), _numbers(results, baseline)
        return _ratio(n.slow_mean_ms, base.slow_mean_ms), _ratio(n.slow_p90_ms, base.slow_p90_ms)

    def evaluate(results: Results) -> tuple[bool, str]:
        n, base = _numbers(results, variant), _numbers(results, baseline)
        mean_ratio, p90_ratio = ratios(results)
        count = n.slow_requests()
        passed = (
            mean_ratio <= MAX_LATENCY_RATIO
            and p90_ratio <= MAX_LATENCY_RATIO
            and count >= MIN_SLOW_PHASE_REQUESTS
        )
        return passed, (
            f"one replica {SLOW_FACTOR} x slow, {USERS} requests in flight: {variant} mean "
            f"{n.slow_mean_ms:.0f} ms, p90 {n.slow_p90_ms:.0f} ms vs {baseline} "
            f"{base.slow_mean_ms:.0f} ms / {base.slow_p90_ms:.0f} ms ({mean_ratio:.2f} x / "
            f"{p90_ratio:.2f} x) over {count} requests, expected <= {MAX_LATENCY_RATIO:g} x "
            f"both (and >= {MIN_SLOW_PHASE_REQUESTS} requests)"
        )

    name = f"{variant}_beats_{baseline}_with_a_slow_replica".replace("-", "_")
    return Check(name, evaluate, (variant, baseline), measure=lambda r: max(ratios(r)))


def avoids_the_slow_replica(variant: str, baseline: str = "round-robin") -> Check:
    """The slow replica's share of `variant`'s requests below MAX_SHARE_RATIO x its share
    of `baseline`'s."""
    return ratio_at_least(
        f"{variant}_starves_the_slow_replica".replace("-", "_"),
        baseline,
        variant,
        lambda result: result.numbers(LoadBalancingNumbers).slow_share_pct,
        1 / MAX_SHARE_RATIO,
        f"api-{SLOW + 1}'s share of the requests while it was {SLOW_FACTOR} x slow, in %",
    )


def fails_over(variant: str, twin: str = "no-health-check") -> Check:
    """After the replica dies, the clients' errors stop within fail_timeout + 2 s (GET,
    proxy_next_upstream on); nginx ejects it: only one try per fail_timeout reaches it
    (a probe) until it answers again; and once restarted and ready it answers again
    through nginx within REJOINS_WITHIN_S. Re-judged against `twin`, the same experiment
    with passive health checks off (max_fails=0), where nginx keeps trying it."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        last, rejoined = n.last_error_after_s, n.rejoined_after_s
        last_text = "none" if last is None else f"the last {last} s after"
        if n.back_after_s is None:
            back_text = "never, before the run ended"
        else:
            back_text = f"{n.back_after_s} s after its restart began ({rejoined} s after"
        return n.fails_over(ERRORS_STOP_WITHIN_S, REJOINS_WITHIN_S), (
            f"{variant}: {n.dead_replica or '?'} killed; clients saw {n.dead_errors} errors "
            f"({last_text}), expected none later than fail_timeout {FAIL_TIMEOUT_S:g} s + 2 s; "
            f"nginx sent it {n.dead_tries} new requests while it was down ({n.dead_in_flight} "
            f"more were in flight when it died), expected <= {n.dead_tries_allowed} (one "
            f"probe per fail_timeout); restarted, it was ready after {n.ready_after_s} s and "
            f"answered again {back_text} it was ready), expected <= {REJOINS_WITHIN_S:g} s "
            "after (fail_timeout + 1 s on nginx's whole-second clock, then its turn)"
        )

    def rejoined(results: Results) -> float:
        seconds = _numbers(results, variant).rejoined_after_s
        return math.nan if seconds is None else seconds

    return Check(
        f"{variant}_fails_over_a_dead_replica".replace("-", "_"),
        evaluate,
        (variant,),
        twins={variant: twin},
        measure=rejoined,
    )


def consistent_hash_moves_few_keys(consistent: str = "hash", plain: str = "hash-plain") -> Check:
    """When a replica is taken out of the upstream (a scale-in), a consistent hash moves
    only its keys, at most MAX_KEYS_MOVED_PCT of them, while a plain hash (modulo the
    number of servers) moves at least MIN_PLAIN_MOVED_PCT: both measured, per key, from
    the replica that answered it before and after. Re-judged with `plain` standing in
    for `consistent` (the consistent variant's twin)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        c, p = _numbers(results, consistent), _numbers(results, plain)
        moved, plain_moved = c.removed_moved_pct(), p.removed_moved_pct()
        compared = [n.removed_keys_compared or 0 for n in (c, p)]
        passed = (
            moved <= MAX_KEYS_MOVED_PCT
            and plain_moved >= MIN_PLAIN_MOVED_PCT
            and min(compared) >= MIN_KEYS_COMPARED
        )
        return passed, (
            f"{c.slow_replica or '?'} taken out of the upstream (nginx reloaded): {consistent} "
            f"moved {c.removed_keys_moved} of {compared[0]} keys ({moved:.1f} %; "
            f"{c.removed_keys_of_it} were its own, {c.removed_keys_moved_not_of_it} moved from "
            f"a replica that stayed), expected <= {MAX_KEYS_MOVED_PCT:g} %; {plain} moved "
            f"{p.removed_keys_moved} of {compared[1]} ({plain_moved:.1f} %), expected >= "
            f"{MIN_PLAIN_MOVED_PCT:g} %; over >= {MIN_KEYS_COMPARED} keys each"
        )

    return Check(
        "hash_consistent_moves_only_the_removed_replicas_keys",
        evaluate,
        (consistent, plain),
        measure=lambda results: _numbers(results, consistent).removed_moved_pct(),
    )


CHECKS = (
    faster_than_round_robin("least-conn"),
    faster_than_round_robin("p2c"),
    avoids_the_slow_replica("least-conn"),
    *(fails_over(v.name) for v in BALANCERS),
    consistent_hash_moves_few_keys(),
)


# --- plots -----------------------------------------------------------------------------------


def _phase_steps(
    result: VariantResult, value: Callable[[PhaseNumbers], Mapping[str, float]]
) -> Series:
    """A step per phase: each label's value holds from its phase's start to the next."""
    n = result.numbers(LoadBalancingNumbers)
    labels: dict[str, list[float]] = {}
    for phase in n.phases:
        for label, y in value(n.by_phase[phase.name]).items():
            labels.setdefault(label, []).append(y)
    xs = [phase.start_s for phase in n.phases]
    return {label: (xs, ys) for label, ys in labels.items()}


def share_by_phase(result: VariantResult) -> Series:
    return _phase_steps(result, lambda p: {k: 100 * v for k, v in p.share.items()})


def latency_by_phase(result: VariantResult) -> Series:
    return _phase_steps(result, lambda p: {"mean": p.mean_ms, "p90": p.p90_ms})


def answers_per_second(result: VariantResult) -> Series:
    counts = result.numbers(LoadBalancingNumbers).per_second
    return {name: (list(range(len(ys))), list(ys)) for name, ys in counts.items()}


LAB = Lab(
    name="load-balancing",
    title="Load balancing: algorithms against a slow replica, passive health checks, a dead one",
    question="Why does the balancing algorithm matter when one replica is slow, and what do "
    "nginx's passive health checks do when a replica dies and comes back?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.slow_share_pct",
        "extra.slow_mean_ms",
        "extra.slow_p90_ms",
        "extra.dead_in_flight",
        "extra.dead_tries",
        "extra.dead_errors",
        "extra.back_after_s",
        "extra.rejoined_after_s",
    ),
    derive=derive,
    plots=(
        Plot("Share of the answers per replica, by phase", "% of answers", share_by_phase, "step"),
        Plot("Answers per second, by replica", "answers/s", answers_per_second, "step"),
        Plot("Latency by phase: mean and p90", "ms", latency_by_phase, "step"),
    ),
    parallel_variants=True,
    demo=False,
    exercise=EXERCISE,
)
