"""Orders and idempotency keys in one Redis, shared by every api replica.

An idempotency key is a small state machine stored next to the orders:

    (absent) --begin--> in_flight (a lease: PX lease) --commit--> done (PX ttl)
                            |                                       |
                            +--release (the handler failed)--> (absent)   (expired) --> (absent)

`begin` and `commit` are Lua scripts: Redis runs a script to completion before any
other command, so two replicas racing on the same key cannot both start, and
`commit` writes the order AND the key's stored response in one step. There is no
moment where the order exists but the key does not know about it (a crash between
two separate writes would turn the next retry into a duplicate).

The key records a fingerprint of the request: the same key with a different body
is a client bug, answered 422 rather than silently replaying another order.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.common.redis_client import fail_fast_client

BEGIN_LUA = """
-- KEYS[1] the idempotency key; ARGV[1] request fingerprint; ARGV[2] lease token;
-- ARGV[3] lease ms. Returns {"started"}, {"mismatch"}, {"in_flight"} or
-- {"done", status, body}.
local raw = redis.call("GET", KEYS[1])
if not raw then
  local record = cjson.encode({state = "in_flight", fp = ARGV[1], token = ARGV[2]})
  redis.call("SET", KEYS[1], record, "PX", ARGV[3])
  return {"started"}
end
local record = cjson.decode(raw)
if record.fp ~= ARGV[1] then
  return {"mismatch"}
end
if record.state == "in_flight" then
  return {"in_flight"}
end
return {"done", tostring(record.status), record.body}
"""

COMMIT_LUA = """
-- KEYS: 1 sequence counter, 2 index (zset seq -> id), 3 the order, 4 idempotency key
-- (optional). ARGV: 1 order JSON without seq, 2 lease token, 3 key ttl ms.
-- Returns {"created", body} or {"lease_lost"} (the key is no longer this request's).
local record
if KEYS[4] then
  local raw = redis.call("GET", KEYS[4])
  if not raw then
    return {"lease_lost"}
  end
  record = cjson.decode(raw)
  if record.state ~= "in_flight" or record.token ~= ARGV[2] then
    return {"lease_lost"}
  end
end
local seq = redis.call("INCR", KEYS[1])
local order = cjson.decode(ARGV[1])
order.seq = seq
local body = cjson.encode(order)
redis.call("SET", KEYS[3], body)
redis.call("ZADD", KEYS[2], seq, order.id)
if KEYS[4] then
  local done = cjson.encode({state = "done", fp = record.fp, status = 201, body = body})
  redis.call("SET", KEYS[4], done, "PX", ARGV[3])
end
return {"created", body}
"""

RELEASE_LUA = """
-- KEYS[1] the idempotency key; ARGV[1] lease token. Deletes it only while this
-- request still holds it in flight.
local raw = redis.call("GET", KEYS[1])
if raw then
  local record = cjson.decode(raw)
  if record.state == "in_flight" and record.token == ARGV[1] then
    return redis.call("DEL", KEYS[1])
  end
end
return 0
"""


class StoreUnavailable(Exception):
    """Redis could not be reached or answered with an error."""


@dataclass(frozen=True)
class Claim:
    """This request holds the key in flight; only the token's holder may commit."""

    key: str
    token: str


@dataclass(frozen=True)
class Begin:
    outcome: Literal["started", "mismatch", "in_flight", "done"]
    claim: Claim | None = None
    status: int = 0
    body: str = ""
    """For done: the stored response to replay."""


@dataclass(frozen=True)
class Commit:
    created: bool
    """False: the lease expired before the commit (nothing was written)."""
    body: str = ""


class OrderStore:
    """Orders (JSON strings), their creation order (a sorted set by sequence number),
    and idempotency keys, under one prefix."""

    def __init__(
        self, client: aioredis.Redis, prefix: str = "", ttl_s: float = 86400, lease_s: float = 30
    ) -> None:
        if ttl_s <= 0 or lease_s <= 0:
            raise ValueError("key ttl and lease must be > 0")
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.lease_ms = max(1, round(lease_s * 1000))
        self._begin = client.register_script(BEGIN_LUA)
        self._commit = client.register_script(COMMIT_LUA)
        self._release = client.register_script(RELEASE_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = "",
        ttl_s: float = 86400,
        lease_s: float = 30,
        timeout_s: float = 2.0,
    ) -> OrderStore:
        client = fail_fast_client(url, timeout_s=timeout_s, decode=True)
        return cls(client, prefix, ttl_s, lease_s)

    def _key(self, name: str) -> str:
        return f"{self.prefix}idem:{name}"

    def _order(self, order_id: str) -> str:
        return f"{self.prefix}order:{order_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}orders:index"

    async def begin(self, key: str, fingerprint: str) -> Begin:
        token = secrets.token_hex(8)
        reply = await self._call(self._begin, [self._key(key)], [fingerprint, token, self.lease_ms])
        outcome = reply[0]
        if outcome == "started":
            return Begin("started", claim=Claim(key, token))
        if outcome == "in_flight":
            return Begin("in_flight")
        if outcome == "done":
            return Begin("done", status=int(reply[1]), body=reply[2])
        return Begin("mismatch")

    async def commit(self, order: dict[str, object], claim: Claim | None = None) -> Commit:
        """Write the order (it gets the next sequence number) and, with a claim, the key's
        stored response, atomically."""
        keys = [f"{self.prefix}orders:seq", self._index, self._order(str(order["id"]))]
        token = ""
        if claim is not None:
            keys.append(self._key(claim.key))
            token = claim.token
        reply = await self._call(self._commit, keys, [json.dumps(order), token, self.ttl_ms])
        if reply[0] == "created":
            return Commit(True, reply[1])
        return Commit(False)

    async def release(self, claim: Claim) -> None:
        """Give the key up (the request failed before committing): a retry may start over."""
        await self._call(self._release, [self._key(claim.key)], [claim.token])

    async def get(self, order_id: str) -> dict[str, object] | None:
        try:
            raw = await self.client.get(self._order(order_id))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return json.loads(raw) if raw else None

    async def since(self, seq: int, limit: int) -> tuple[list[dict[str, object]], bool]:
        """Orders with a sequence number above `seq`, oldest first, at most `limit`;
        and whether more follow."""
        try:
            ids = await self.client.zrangebyscore(
                self._index, f"({seq}", "+inf", start=0, num=limit + 1
            )
            more = len(ids) > limit
            ids = ids[:limit]
            raws = await self.client.mget([self._order(i) for i in ids]) if ids else []
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [json.loads(raw) for raw in raws if raw], more

    async def _call(self, script, keys: list[str], args: list[object]) -> list[str]:  # noqa: ANN001
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self.client.aclose()
