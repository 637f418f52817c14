"""idempotency's scenario: retried POSTs duplicate orders; an Idempotency-Key on a shared
store does not.

Shoppers (Locust) -> nginx (round robin) -> 3 api replicas -> one Redis holding the
orders. On LOSE_RATE of the orders the api commits the order and then holds the
response back past the client's timeout: the client cannot tell whether its order
exists, and retries. Without a key every retry that follows a lost response is a
second order. With one Idempotency-Key per order, sent on every retry, the retry
lands on any replica, finds the key's stored response in Redis, and gets the first
order back. Keys kept in each replica's memory (`local-keys`) do not: round robin
sends most retries to a replica that has never seen the key. After each run the lab
reconciles the clients' intents with the store (measure.py).
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

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
