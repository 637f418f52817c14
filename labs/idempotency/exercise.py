"""idempotency's exercise: the client's retry policy and the api's key store, as a
learner edits them, graded on duplicate and lost orders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.idempotency.measure import IdempotencyNumbers
from labs.idempotency.scenario import MIN_INTENTS, REPLICAS, api, load


def settings(variant: Variant) -> str:
    """The exercise's editable file: the client's retry policy and the api's key store."""
    env, args = variant.load.env, variant.services[0].args
    key = "true" if env["LAB_IDEMPOTENCY_KEY"] == "on" else "false"
    return f"""\
# idempotency exercise. Shoppers' orders are sometimes placed twice. The api loses a
# few responses after saving the order (the client times out), and the client retries.
# Change the values below, then run `lab grade idempotency`.

[client]
# Attempts per order, the first included (1 = never retry).
attempts = {env["LAB_CLIENT_ATTEMPTS"]}
# Send one Idempotency-Key per order, the same on every retry of that order.
idempotency_key = {key}

[api]
# Where the api keeps Idempotency-Key records: "off" (the header is ignored),
# "local" (each replica's own memory) or "redis" (the Redis that holds the orders,
# shared by all {REPLICAS} replicas).
idempotency = "{args["idempotency"]}"
# Seconds a finished key keeps replaying its response.
key_ttl_s = {args["idempotency-ttl"]}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    attempts = edits.whole(data, "client.attempts", 1, 20)
    send_key = edits.boolean(data, "client.idempotency_key")
    store = edits.choice(data, "api.idempotency", ("off", "local", "redis"))
    ttl = edits.number(data, "api.key_ttl_s", 0, 7 * 86400, "seconds")
    return replace(base, services=api(store, ttl), load=load(attempts, send_key))


def retries_removed(variant: Variant) -> str | None:
    if int(variant.load.env["LAB_CLIENT_ATTEMPTS"]) < 2:
        return (
            "attempts = 1 turns the client's retries off. No order is duplicated, but every "
            "lost response leaves the shopper not knowing whether the order exists (and a "
            "failure before the commit loses it). Keep the retries; make them safe."
        )
    return None


def keys_per_replica(variant: Variant) -> str | None:
    if variant.services[0].args["idempotency"] == "local":
        return (
            'api.idempotency = "local" keeps each key in one replica\'s memory. Round robin '
            f"sends a retry to another of the {REPLICAS} replicas, which has never seen the "
            "key and creates the order again. The key store must be shared by every replica."
        )
    return None


def duplicates(result: VariantResult) -> str:
    n = result.numbers(IdempotencyNumbers)
    return (
        f"{n.duplicates:g} duplicate orders for {n.finished_intents:g} intended "
        f"({n.duplicate_pct:.1f} %), {n.lost:g} lost"
    )


def holds(result: VariantResult) -> bool:
    n = result.numbers(IdempotencyNumbers)
    return (
        n.duplicates == 0
        and n.lost == 0
        and n.mismatches == 0
        and n.client_gave_up == 0
        and n.finished_intents >= MIN_INTENTS
    )


EXERCISE = Exercise(
    task=(
        "Shoppers get charged twice: the order store holds two orders where the shopper "
        "placed one. The api sometimes saves an order and then the response never reaches "
        "the client, which times out and tries again. Look at what the client sends on a "
        "retry and what the api remembers about requests it has already done."
    ),
    broken="naive-retry",
    fixed="idempotency-key",
    settings=settings,
    apply=apply_settings,
    measure=duplicates,
    holds=holds,
    expected="0 duplicates and 0 lost orders",
    advice="a retry must tell the api it is the same order, and every replica must be able "
    "to recognise it",
    guards=(retries_removed, keys_per_replica),
    hints=(
        "The retry is a new request as far as the api can tell. What could the client send "
        "that stays the same across the retries of one order, and differs between orders?",
        "An Idempotency-Key: the client sends one per order (client.idempotency_key), and the "
        "api remembers key -> response. Where must the api keep that memory, with 3 replicas "
        "behind round robin?",
        'Set client.idempotency_key = true and api.idempotency = "redis": the key and its '
        "stored response live with the orders in the shared Redis, so a retry on any replica "
        "gets the first order back.",
    ),
)
