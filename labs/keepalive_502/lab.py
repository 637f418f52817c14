"""keep-alive 502: nginx reuses an upstream connection the backend is closing.

The lab's checks over the typed numbers (`KeepaliveNumbers`) and `LAB`. The story and the
variants are in scenario.py, the numbers in measure.py, the exercise in exercise.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.checks import (
    nginx_errors_at_least,
    status_absent,
    status_at_least,
    within,
)
from labs.engine.model.spec import Check, Lab
from labs.engine.topology.nginx import UPSTREAM_RESET_KINDS
from labs.keepalive_502.exercise import EXERCISE
from labs.keepalive_502.measure import KeepaliveNumbers, derive
from labs.keepalive_502.scenario import (
    API_CLOSED_MIN,
    BROKEN_MIN_502,
    BROKEN_MIN_502_SHARE,
    MIN_REQUESTS,
    MIN_TRAFFIC,
    REUSED_MIN_PCT,
    SHORT_POOL_REUSED_MAX_PCT,
    VARIANTS,
)

Results = Mapping[str, VariantResult]


def _numbers(results: Results, variant: str) -> KeepaliveNumbers:
    return results[variant].numbers(KeepaliveNumbers)


def _reused(variant: str) -> Callable[[Results], float]:
    return lambda results: _numbers(results, variant).reused


def reuses_connections(variant: str) -> Check:
    """`variant`'s pool serves the traffic: most requests ride a reused connection."""

    def evaluate(results: Results) -> tuple[bool, str]:
        n = _numbers(results, variant)
        return n.serves_traffic(MIN_TRAFFIC), (
            f"{variant}: {n.reuse_text()} ({n.traffic_requests} requests), expected >= "
            f"{REUSED_MIN_PCT:g} % of >= {MIN_TRAFFIC}"
        )

    return Check(f"{variant}_reuses_connections", evaluate, (variant,), measure=_reused(variant))


def short_pool_reuses_nothing() -> Check:
    """The trap of lowering nginx's timeout under the traffic's gap: no 502s, and no pool."""

    def evaluate(results: Results) -> tuple[bool, str]:
        r = results["short-pool"]
        n = r.numbers(KeepaliveNumbers)
        passed = (
            r.count(502) == 0
            and r.requests >= MIN_REQUESTS
            and n.reused <= SHORT_POOL_REUSED_MAX_PCT
        )
        return passed, (
            f"short-pool: {r.count(502)} of {r.requests} were 502 and {n.reuse_text()}, "
            f"expected 0 502s and <= {SHORT_POOL_REUSED_MAX_PCT:g} % reused"
        )

    return Check(
        "short_pool_has_no_502_and_reuses_nothing",
        evaluate,
        ("short-pool",),
        measure=_reused("short-pool"),
    )


def api_closes_first(variant: str, count: int) -> Check:
    """The rule broken, seen directly: the api closed idle connections nginx still held
    (every time, not only when a burst races the close)."""
    return within(
        f"{variant}_api_closes_idle_connections_first",
        variant,
        lambda result: result.numbers(KeepaliveNumbers).closed_first,
        count,
        math.inf,
        "idle connections the api closed first, while nginx still held them",
    )


LAB = Lab(
    name="keepalive-502",
    title="Keep-alive mismatch: 502s from a reused upstream connection",
    question="Why does nginx return 502 when the backend is healthy and fast?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        status_at_least("broken", 502, count=BROKEN_MIN_502, share=BROKEN_MIN_502_SHARE),
        nginx_errors_at_least("broken", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
        api_closes_first("broken", count=API_CLOSED_MIN),
        status_absent("fixed", 502, min_requests=MIN_REQUESTS),
        # Reuse is what a "fix" that empties the pool loses: proven against short-pool.
        replace(reuses_connections("fixed"), twins={"fixed": "short-pool"}),
        # What hides the 502s is nginx retrying a GET; the same load as a POST shows them.
        replace(
            status_absent("masked", 502, min_requests=MIN_REQUESTS), twins={"masked": "broken"}
        ),
        nginx_errors_at_least("masked", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
        short_pool_reuses_nothing(),
    ),
    key_metrics=(
        "requests",
        "status.200",
        "status.502",
        "upstream_retried",
        "extra.reused_pct",
        "extra.api_closed_first",
        "p99_ms",
    ),
    parallel_variants=True,
    derive=derive,
    exercise=EXERCISE,
)
