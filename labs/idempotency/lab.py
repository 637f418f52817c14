"""idempotency: retried POSTs duplicate orders; an Idempotency-Key on a shared store does not.

The lab: its checks over the reconciled numbers (measure.py) of the variants in
scenario.py, and `LAB`. The exercise is in exercise.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.orders import COLLECT_ORDERS
from labs.engine.model.spec import Check, Lab
from labs.idempotency.exercise import EXERCISE
from labs.idempotency.measure import IdempotencyNumbers, derive
from labs.idempotency.scenario import (
    MIN_DUPLICATE_PCT,
    MIN_INTENTS,
    MIN_RETRIES,
    VARIANTS,
)


def _lost_responses(n: IdempotencyNumbers) -> str:
    return (
        f"{n.api_lost_responses:g} responses lost after commit, {n.client_retries:g} client retries"
    )


def duplicates_reproduced(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = results[variant].numbers(IdempotencyNumbers)
        pct, finished = n.duplicate_pct, n.finished_intents
        passed = pct >= MIN_DUPLICATE_PCT and finished >= MIN_INTENTS
        return passed, (
            f"{variant}: {n.duplicates:g} duplicate orders for {finished:g} intended "
            f"({pct:.1f} %; {_lost_responses(n)}), expected >= {MIN_DUPLICATE_PCT:g} % "
            f"over >= {MIN_INTENTS} intents"
        )

    return Check(
        f"{variant}_duplicates_orders".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: results[variant].numbers(IdempotencyNumbers).duplicate_pct,
    )


def exactly_once_effect(variant: str) -> Check:
    """0 duplicates, 0 lost, 0 mismatches, and every shopper told 201 (none gave up), over
    enough intents, WITH the fault having hit (a run where no response was lost would
    prove nothing)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = results[variant].numbers(IdempotencyNumbers)
        passed = (
            n.duplicates == 0
            and n.lost == 0
            and n.mismatches == 0
            and n.client_gave_up == 0
            and n.finished_intents >= MIN_INTENTS
            and n.client_retries >= MIN_RETRIES
        )
        return passed, (
            f"{variant}: {n.duplicates:g} duplicates, {n.lost:g} lost, {n.mismatches:g} "
            f"mismatches, {n.client_gave_up:g} shoppers gave up, for {n.finished_intents:g} "
            f"intended orders ({_lost_responses(n)}, {n.api_replayed:g} replayed); expected "
            f"0, 0, 0, 0 over >= {MIN_INTENTS} intents and >= {MIN_RETRIES} retries"
        )

    return Check(
        f"{variant}_no_duplicates_no_lost".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: results[variant].numbers(IdempotencyNumbers).wrong,
    )


LAB = Lab(
    name="idempotency",
    title="Idempotency keys: no duplicated and no lost orders under retries",
    question="Why do retried POSTs create duplicate orders, and how does an "
    "Idempotency-Key make a retry safe?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        duplicates_reproduced("naive-retry"),
        exactly_once_effect("idempotency-key"),
        duplicates_reproduced("local-keys"),
    ),
    key_metrics=(
        "extra.intents",
        "extra.orders_stored",
        "extra.duplicates",
        "extra.duplicate_pct",
        "extra.lost",
        "extra.mismatches",
        "extra.api_lost_responses",
        "extra.client_retries",
        "extra.api_replayed",
    ),
    parallel_variants=True,
    derive=derive,
    collect=(COLLECT_ORDERS,),
    exercise=EXERCISE,
)
