"""The orders resource: POST /orders (Idempotency-Key aware), GET /orders/{id},
GET /orders?since=SEQ for reconciliation. Orders live in Redis, shared by every
replica (services.api.order_store).

POST /orders with an `Idempotency-Key` header (when `--idempotency redis`):
- first time: the key is claimed, the order committed together with its response;
- the same key and body again: the stored response, `Idempotent-Replayed: true`;
- the same key while the first request is still running: 409 + Retry-After;
- the same key with a different body: 422 (a client bug, never a replay).
Without the header (or with `--idempotency off`) every POST creates an order.
`--idempotency local` keeps the keys in each replica's memory (services.api.local_keys):
a lesson in why the key store must be shared, not a setting to deploy.

The `lose_response_rate` fault (services.api.faults) commits the order and then
holds the response back for `lose_response_ms`, past the client's timeout: the
client cannot tell whether its order exists, the situation a retry must survive.
`latency_ms` delays the work before the commit, while the key is in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from services.api.faults import Faults
from services.api.local_keys import LocalKeys
from services.api.order_store import Begin, Claim, OrderStore, StoreUnavailable
from services.common.problem import problem

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
"""Visible ASCII, 1-255 characters (a UUID is the usual choice)."""
TEXT_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_ITEMS = 20
MAX_QTY = 1000
MAX_PAGE = 10_000
FIELDS = frozenset({"customer", "items", "intent_id"})

IdempotencyStore = Literal["off", "redis", "local"]


class InvalidOrder(ValueError):
    """The body is JSON but not a valid order."""


@dataclass(frozen=True)
class OrdersConfig:
    redis_url: str
    idempotency: IdempotencyStore = "redis"
    """Where Idempotency-Key records live: "redis" (with the orders, shared by every
    replica), "local" (this replica's memory only), or "off" (the header is ignored)."""
    key_ttl_s: float = 86400.0
    """How long a completed key replays its response; a retry after that is a new order."""
    key_lease_s: float = 30.0
    """How long an in-flight key blocks others (a crashed request frees it after this)."""
    prefix: str = ""
    redis_timeout_s: float = 2.0
    """Connect/command timeout: a Redis slower than this is a 503 (the client retries)."""


@dataclass
class OrdersState:
    config: OrdersConfig
    store: OrderStore
    faults: Callable[[], Faults]
    rng: random.Random
    local_keys: LocalKeys | None = None
    replica_id: str = "api-1"
    counts: Counter[str] = field(default_factory=Counter)
    """created, replayed, in_flight_409, key_reused_422, invalid, lost_responses, store_errors."""


ORDERS = web.AppKey("orders", OrdersState)


# --- validation -------------------------------------------------------------------------------


def validate(body: object) -> dict[str, object]:
    """The order a client asked for, normalized; InvalidOrder says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidOrder("body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidOrder(f"unknown field(s): {', '.join(unknown)}")
    customer = body.get("customer")
    if not isinstance(customer, str) or not TEXT_PATTERN.fullmatch(customer):
        raise InvalidOrder("customer must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidOrder(f"items must be a list of 1-{MAX_ITEMS} items")
    order: dict[str, object] = {"customer": customer, "items": [_item(i) for i in items]}
    intent = body.get("intent_id")
    if intent is not None:
        if not isinstance(intent, str) or not TEXT_PATTERN.fullmatch(intent):
            raise InvalidOrder("intent_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
        order["intent_id"] = intent
    return order


def _item(item: object) -> dict[str, object]:
    if not isinstance(item, dict) or set(item) != {"sku", "qty"}:
        raise InvalidOrder('each item must be {"sku": ..., "qty": ...}')
    sku, qty = item["sku"], item["qty"]
    if not isinstance(sku, str) or not TEXT_PATTERN.fullmatch(sku):
        raise InvalidOrder("sku must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QTY:
        raise InvalidOrder(f"qty must be a whole number from 1 to {MAX_QTY}")
    return {"sku": sku, "qty": qty}


def fingerprint(order: dict[str, object]) -> str:
    """The request's identity for key reuse: the normalized body, key order and
    whitespace aside."""
    canonical = json.dumps(order, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"POST /orders\n{canonical}".encode()).hexdigest()


# --- handlers ---------------------------------------------------------------------------------


async def create_order(request: web.Request) -> web.StreamResponse:
    state = request.app[ORDERS]
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        state.counts["invalid"] += 1
        return problem(400, "Bad Request", "body must be JSON")
    except web.HTTPRequestEntityTooLarge:
        state.counts["invalid"] += 1
        return problem(413, "Payload Too Large", "body is too large")
    try:
        order = validate(raw)
    except InvalidOrder as exc:
        state.counts["invalid"] += 1
        return problem(422, "Invalid Order", str(exc), type="/problems/invalid-order")
    key = request.headers.get(KEY_HEADER)
    if state.config.idempotency == "off":
        key = None
    if key is not None and not KEY_PATTERN.fullmatch(key):
        state.counts["invalid"] += 1
        return problem(400, "Bad Request", f"{KEY_HEADER} must be 1-255 visible ASCII characters")
    try:
        response = await _create(state, order, key)
    except StoreUnavailable as exc:
        state.counts["store_errors"] += 1
        unavailable = problem(503, "Service Unavailable", f"order store: {exc}")
        unavailable.headers["Retry-After"] = "1"
        return unavailable
    response.headers["X-Replica"] = state.replica_id
    if response.status == 201:
        await _maybe_lose(state)
    return response


async def _create(state: OrdersState, order: dict[str, object], key: str | None) -> web.Response:
    claim: Claim | None = None
    if key is not None:
        begin = await _begin(state, key, fingerprint(order))
        if begin.outcome == "mismatch":
            state.counts["key_reused_422"] += 1
            return problem(
                422, "Idempotency Key Reused",
                f"this {KEY_HEADER} was used with a different request body",
                type="/problems/idempotency-key-reused",
            )  # fmt: skip
        if begin.outcome == "in_flight":
            state.counts["in_flight_409"] += 1
            return _in_flight()
        if begin.outcome == "done":
            state.counts["replayed"] += 1
            return _created(begin.body, begin.status, replayed=True)
        claim = begin.claim
    latency_ms = state.faults().latency_ms
    if latency_ms:  # slow work while the key is in flight: a repeat now gets 409
        await asyncio.sleep(latency_ms / 1000)
    record = {
        **order,
        "id": uuid.uuid4().hex,
        "created_at": round(time.time(), 6),
        "replica": state.replica_id,
    }
    local = state.local_keys
    try:
        commit = await state.store.commit(record, None if local else claim)
    except StoreUnavailable:
        if claim is not None:
            await _release_quietly(state, claim)
        raise
    if not commit.created:  # our lease ran out mid-request and someone else holds the key
        state.counts["in_flight_409"] += 1
        return _in_flight()
    if local is not None and claim is not None:
        local.complete(claim, 201, commit.body)
    state.counts["created"] += 1
    return _created(commit.body, 201)


async def _begin(state: OrdersState, key: str, fingerprint: str) -> Begin:
    if state.local_keys is not None:
        return state.local_keys.begin(key, fingerprint)
    return await state.store.begin(key, fingerprint)


async def _release_quietly(state: OrdersState, claim: Claim) -> None:
    if state.local_keys is not None:
        state.local_keys.release(claim)
        return
    with contextlib.suppress(StoreUnavailable):  # else the lease expires on its own
        await state.store.release(claim)


def _created(body: str, status: int, replayed: bool = False) -> web.Response:
    response = web.Response(text=body, status=status, content_type="application/json")
    response.headers["Location"] = f"/orders/{json.loads(body)['id']}"
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _in_flight() -> web.Response:
    """Retry-After 1 s: a hint to come back soon, not the lease (the worst case)."""
    response = problem(
        409, "Request In Progress",
        f"a request with this {KEY_HEADER} is still being processed; retry later",
        type="/problems/idempotency-key-in-flight",
    )  # fmt: skip
    response.headers["Retry-After"] = "1"
    return response


async def _maybe_lose(state: OrdersState) -> None:
    """The order is committed; on a share of requests the response now goes missing."""
    faults = state.faults()
    if faults.lose_response_rate and state.rng.random() < faults.lose_response_rate:
        state.counts["lost_responses"] += 1
        await asyncio.sleep(faults.lose_response_ms / 1000)


async def get_order(request: web.Request) -> web.Response:
    state = request.app[ORDERS]
    try:
        order = await state.store.get(request.match_info["order_id"])
    except StoreUnavailable as exc:
        return problem(503, "Service Unavailable", f"order store: {exc}")
    if order is None:
        return problem(404, "Not Found", "no such order")
    return web.json_response(order)


async def list_orders(request: web.Request) -> web.Response:
    """?since=SEQ&limit=N: orders after sequence number SEQ, oldest first. A reconciler
    pages with since=<next_since> until `more` is false."""
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        return problem(400, "Bad Request", "since and limit must be whole numbers")
    if since < 0 or not 1 <= limit <= MAX_PAGE:
        return problem(400, "Bad Request", f"since must be >= 0 and limit 1-{MAX_PAGE}")
    try:
        orders, more = await request.app[ORDERS].store.since(since, limit)
    except StoreUnavailable as exc:
        return problem(503, "Service Unavailable", f"order store: {exc}")
    next_since = int(orders[-1]["seq"]) if orders else since  # type: ignore[call-overload]
    return web.json_response({"orders": orders, "next_since": next_since, "more": more})


# --- wiring -----------------------------------------------------------------------------------


def install(
    app: web.Application,
    config: OrdersConfig,
    faults: Callable[[], Faults],
    rng: random.Random,
    replica_id: str,
) -> None:
    store = OrderStore.from_url(
        config.redis_url, config.prefix, config.key_ttl_s, config.key_lease_s,
        config.redis_timeout_s,
    )  # fmt: skip
    local = None
    if config.idempotency == "local":
        local = LocalKeys(config.key_ttl_s, config.key_lease_s)
    app[ORDERS] = OrdersState(config, store, faults, rng, local, replica_id)
    app.router.add_post("/orders", create_order)
    app.router.add_get("/orders", list_orders)
    app.router.add_get("/orders/{order_id}", get_order)

    async def close(_app: web.Application) -> None:
        await store.close()

    app.on_cleanup.append(close)


def stats(app: web.Application) -> dict[str, object]:
    """The orders section of /admin/stats ({} when the resource is off)."""
    state = app.get(ORDERS)
    if state is None:
        return {}
    return {
        "orders": {
            "idempotency": state.config.idempotency,
            "key_ttl_s": state.config.key_ttl_s,
            **{name: state.counts[name] for name in sorted(state.counts)},
        }
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("orders (POST/GET /orders, stored on --redis-url)")
    group.add_argument("--orders", choices=("off", "redis"), default="off", help="orders resource")
    group.add_argument(
        "--idempotency",
        choices=("off", "redis", "local"),
        default="redis",
        help="where Idempotency-Key records live: redis (shared, default), local (this "
        "replica's memory: duplicates behind a load balancer) or off (ignored)",
    )
    group.add_argument("--idempotency-ttl", type=float, default=86400.0, help="key ttl, s")
    group.add_argument("--idempotency-lease", type=float, default=30.0, help="in-flight lease, s")
    group.add_argument(
        "--lose-response-rate", type=float, default=0.0, help="fault: share of lost responses"
    )
    group.add_argument(
        "--lose-response-ms", type=float, default=2000.0, help="fault: how long one is held"
    )


def config_from_args(args: argparse.Namespace) -> OrdersConfig | None:
    if args.orders == "off":
        return None
    if not args.redis_url:
        raise ValueError("--orders redis needs --redis-url")
    if args.idempotency_ttl <= 0 or args.idempotency_lease <= 0:
        raise ValueError("--idempotency-ttl and --idempotency-lease must be > 0")
    return OrdersConfig(
        redis_url=args.redis_url,
        idempotency=args.idempotency,
        key_ttl_s=args.idempotency_ttl,
        key_lease_s=args.idempotency_lease,
    )
