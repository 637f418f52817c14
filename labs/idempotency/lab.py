"""idempotency: retried POSTs duplicate orders; an Idempotency-Key on a shared store does not.

Shoppers (Locust) -> nginx (round robin) -> 3 api replicas -> one Redis holding the
orders. On LOSE_RATE of the orders the api commits the order and then holds the
response back past the client's timeout: the client cannot tell whether its order
exists, and retries. Without a key every retry that follows a lost response is a
second order. With one Idempotency-Key per order, sent on every retry, the retry
lands on any replica, finds the key's stored response in Redis, and gets the first
order back. Keys kept in each replica's memory (`local-keys`) do not: round robin
sends most retries to a replica that has never seen the key. After each run the lab
reconciles the clients' intents with the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.engine import edits
from labs.engine.metrics import VariantResult
from labs.engine.spec import (
    Check,
    Exercise,
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.idempotency.reconcile import COLLECT_ORDERS, derive

REPLICAS = 3
USERS = 12
DURATION_S = 20
LOSE_RATE = 0.06
"""Share of POST /orders whose response the api loses after committing."""
CLIENT_TIMEOUT_S = 1.0
LOSE_MS = 2000
"""A lost response is held 2 s: twice the client's 1 s timeout."""
CLIENT_ATTEMPTS = 8
KEY_TTL_S = 600
MIN_INTENTS = 300
MIN_DUPLICATE_PCT = 1.0
MIN_RETRIES = 10


def api(idempotency: str, ttl_s: float = KEY_TTL_S) -> tuple[ServiceSpec, ...]:
    args = {
        "orders": "redis",
        "idempotency": idempotency,
        "idempotency-ttl": ttl_s,
        "lose-response-rate": LOSE_RATE,
        "lose-response-ms": LOSE_MS,
        "seed": 11,
    }
    return (ServiceSpec("api", replicas=REPLICAS, args=args, depends_on={"redis-url": "redis"}),)


def load(attempts: int, send_key: bool) -> LoadSpec:
    return LoadSpec(
        locustfile="orders.py",
        users=USERS,
        spawn_rate=USERS,
        duration_s=DURATION_S,
        env={
            "LAB_IDEMPOTENCY_KEY": "on" if send_key else "off",
            "LAB_CLIENT_ATTEMPTS": str(attempts),
            "LAB_CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
        },
    )


# nginx never retries a POST it already sent (proxy_next_upstream leaves non_idempotent
# out): the client is the one that retries, which is the point of the lab.
NGINX = NginxSpec(upstream=Upstream(keepalive=32))

NAIVE = Variant(
    name="naive-retry",
    summary=f"clients retry a timed-out POST up to {CLIENT_ATTEMPTS} times, no key; "
    f"{LOSE_RATE:.0%} of responses lost after the commit",
    nginx=NGINX,
    services=api("off"),
    load=load(CLIENT_ATTEMPTS, send_key=False),
    parts=("redis",),
    twin="idempotency-key",
)
KEYED = replace(
    NAIVE,
    name="idempotency-key",
    summary="the same retries with one Idempotency-Key per order; keys and stored "
    "responses in the shared Redis, committed with the order",
    services=api("redis"),
    load=load(CLIENT_ATTEMPTS, send_key=True),
    twin="naive-retry",
)
LOCAL_KEYS = replace(
    KEYED,
    name="local-keys",
    summary="the same keys, but each replica remembers only its own: a retry that round "
    "robin sends elsewhere is a new order there",
    services=api("local"),
    twin="idempotency-key",
)
VARIANTS = (NAIVE, KEYED, LOCAL_KEYS)


# --- checks ----------------------------------------------------------------------------------


def _lost_responses(r: VariantResult) -> str:
    return (
        f"{r.number('api_lost_responses'):g} responses lost after commit, "
        f"{r.number('client_retries'):g} client retries"
    )


def duplicates_reproduced(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        pct, finished = r.number("duplicate_pct"), r.number("finished_intents")
        passed = pct >= MIN_DUPLICATE_PCT and finished >= MIN_INTENTS
        return passed, (
            f"{variant}: {r.number('duplicates'):g} duplicate orders for {finished:g} intended "
            f"({pct:.1f} %; {_lost_responses(r)}), expected >= {MIN_DUPLICATE_PCT:g} % "
            f"over >= {MIN_INTENTS} intents"
        )

    return Check(
        f"{variant}_duplicates_orders".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: results[variant].number("duplicate_pct"),
    )


def exactly_once_effect(variant: str) -> Check:
    """0 duplicates, 0 lost, 0 mismatches, and every shopper told 201 (none gave up), over
    enough intents, WITH the fault having hit (a run where no response was lost would
    prove nothing)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        dup, lost, bad = r.number("duplicates"), r.number("lost"), r.number("mismatches")
        gave_up = r.number("client_gave_up")
        finished, retries = r.number("finished_intents"), r.number("client_retries")
        passed = (
            dup == 0
            and lost == 0
            and bad == 0
            and gave_up == 0
            and finished >= MIN_INTENTS
            and retries >= MIN_RETRIES
        )
        return passed, (
            f"{variant}: {dup:g} duplicates, {lost:g} lost, {bad:g} mismatches, {gave_up:g} "
            f"shoppers gave up, for {finished:g} intended orders ({_lost_responses(r)}, "
            f"{r.number('api_replayed'):g} replayed); expected 0, 0, 0, 0 over >= {MIN_INTENTS} "
            f"intents and >= {MIN_RETRIES} retries"
        )

    def wrong(results: Mapping[str, VariantResult]) -> float:
        r = results[variant]
        return sum(r.number(k) for k in ("duplicates", "lost", "mismatches", "client_gave_up"))

    return Check(
        f"{variant}_no_duplicates_no_lost".replace("-", "_"), evaluate, (variant,), measure=wrong
    )


# --- exercise --------------------------------------------------------------------------------


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
    dup, finished = result.number("duplicates"), result.number("finished_intents")
    return (
        f"{dup:g} duplicate orders for {finished:g} intended "
        f"({result.number('duplicate_pct'):.1f} %), {result.number('lost'):g} lost"
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
    holds=lambda r: (
        r.number("duplicates") == 0
        and r.number("lost") == 0
        and r.number("mismatches") == 0
        and r.number("client_gave_up") == 0
        and r.number("finished_intents") >= MIN_INTENTS
    ),
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
