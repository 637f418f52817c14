"""graceful-shutdown: a rolling restart with no client-visible errors.

The lab's verdicts over the typed numbers (`GracefulNumbers`) and `LAB`. The story and
the variants are in scenario.py, the numbers in measure.py, the exercise in exercise.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.orders import COLLECT_ORDERS
from labs.engine.model.spec import Check, Lab
from labs.graceful_shutdown.exercise import EXERCISE
from labs.graceful_shutdown.measure import GracefulNumbers, derive, describe_failures
from labs.graceful_shutdown.scenario import (
    MIN_ERRORS,
    MIN_RACES,
    MIN_REQUESTS,
    REPLICAS,
    ROUNDS,
    VARIANTS,
)

Results = Mapping[str, VariantResult]
PLANNED = ROUNDS * REPLICAS
"""Restarts in the lab's rollout."""


def _numbers(results: Results, variant: str) -> GracefulNumbers:
    return results[variant].numbers(GracefulNumbers)


def _posts(n: GracefulNumbers) -> str:
    return f"{n.failed_posts:g} of {n.posts:,.0f} POSTs failed, {n.lost_posts:g} orders lost"


def _restarts(n: GracefulNumbers) -> str:
    return f"{n.restarts:g} restarts of {n.replicas_restarted:g} replicas"


def errors_reproduced(variant: str) -> Check:
    def evaluate(results: Results) -> tuple[bool, str]:
        r = results[variant]
        n = r.numbers(GracefulNumbers)
        passed = n.failed >= MIN_ERRORS and n.restarts == PLANNED
        return passed, (
            f"{variant}: {describe_failures(r)}; {_posts(n)}; {_restarts(n)}; "
            f"expected >= {MIN_ERRORS} failed requests over {PLANNED} restarts"
        )

    return Check(
        f"{variant}_shows_client_errors".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).failed,
    )


def race_reproduced(variant: str) -> Check:
    """aiohttp's own shutdown finishes every in-flight request, then closes its
    connection without telling nginx, which has already pooled it: requests nginx sends
    into those connections fail (GETs retried by nginx, POSTs lost)."""

    def evaluate(results: Results) -> tuple[bool, str]:
        r = results[variant]
        n = r.numbers(GracefulNumbers)
        passed = n.upstream_resets >= MIN_RACES and n.lost_posts >= 1 and n.restarts == PLANNED
        return passed, (
            f"{variant}: {n.upstream_resets:g} upstream resets in nginx's error log; "
            f"{describe_failures(r)}; {_posts(n)}; {_restarts(n)}; expected >= {MIN_RACES} "
            f"resets and >= 1 lost order over {PLANNED} restarts"
        )

    return Check(
        f"{variant}_loses_posts_on_pooled_connections".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).upstream_resets,
    )


def zero_errors(variant: str) -> Check:
    """0 failed requests and 0 lost orders over a whole rolling restart that happened:
    every replica restarted, every drain finished with no connection left to cut."""

    def evaluate(results: Results) -> tuple[bool, str]:
        r = results[variant]
        n = r.numbers(GracefulNumbers)
        return n.rolled_out_clean(r.requests), (
            f"{variant}: {describe_failures(r)}; {_posts(n)}, {n.duplicates:g} duplicated; "
            f"{n.upstream_resets:g} upstream resets in nginx's error log; {_restarts(n)} "
            f"(longest drain {n.drain_max_s} s, {n.drain_backlog_accepted:g} connections accepted "
            f"from the backlog as a listener closed, {n.drain_connections_left:g} cut at the "
            f"deadline); expected 0 failed, 0 lost, 0 duplicated, 0 resets over >= "
            f"{MIN_REQUESTS:,} requests and {PLANNED} restarts of all {REPLICAS} replicas"
        )

    return Check(
        f"{variant}_no_client_errors_no_lost_posts",
        evaluate,
        (variant,),
        measure=lambda results: _numbers(results, variant).wrong,
    )


CHECKS = (
    errors_reproduced("hard-kill"),
    errors_reproduced("sigterm-naive"),
    race_reproduced("aiohttp-default"),
    zero_errors("graceful"),
)

LAB = Lab(
    name="graceful-shutdown",
    title="Graceful shutdown: a rolling restart with no client-visible errors",
    question="What must a service do on SIGTERM so that a rolling restart behind a load "
    "balancer loses no request, not even a POST on a pooled keep-alive connection?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.failed",
        "extra.failed_posts",
        "extra.lost_posts",
        "status.502",
        "extra.upstream_resets",
        "upstream_retried",
        "extra.restarts",
        "extra.drain_max_s",
        "extra.drain_backlog_accepted",
    ),
    parallel_variants=True,
    derive=derive,
    collect=(COLLECT_ORDERS,),
    exercise=EXERCISE,
)
