"""An origin whose answer is expensive: GET /hot computes for --compute-ms (uniformly
+- --jitter-ms) and answers with how long its answer may be cached (`Cache-Control:
max-age=--max-age-s`, with `stale-while-revalidate` / `stale-if-error` when set).

With --cache redis the origin keeps its own answer in Redis (cache-aside, fresh for
--max-age-s): a request that finds it fresh is answered from Redis, one that does not
computes it and stores it. With --single-flight lock, only the request that wins a short
Redis lock (SET NX PX) computes; the others answer with the stale copy, or, when there
is none yet, wait for the winner's.

Every computation is counted, and its start time kept (`/admin/stats` ->
`computations`, `computation_starts`): a cache in front shows up as few computations,
a stampede as many starting together. The fault switch (`PUT /admin/faults`
{"error_status": 500}) makes every computation fail with that status until it is set
back to 0 (`DELETE /admin/faults`).
Public: /hot, /healthz, /readyz. Admin (nginx never exposes it): /admin/stats,
/admin/faults.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from services.common import health, shutdown
from services.common.redis_client import fail_fast_client

CACHE_KEY, LOCK_KEY = "origin:hot", "origin:hot:lock"
KEEP_STALE_S = 60
"""How long Redis keeps an answer after it goes stale (for single-flight's losers)."""
POLL_S = 0.02
"""How often a request with no copy at all looks for the lock winner's answer."""


@dataclass(frozen=True)
class OriginConfig:
    replica_id: str = "origin-1"
    compute_ms: float = 400.0
    jitter_ms: float = 100.0
    max_age_s: int = 2
    stale_while_revalidate_s: int = 0
    stale_if_error_s: int = 0
    seed: int | None = None
    redis_url: str = ""
    """Cache-aside in this Redis ("" = none: every request computes)."""
    single_flight: bool = False
    lock_ms: int = 2000


@dataclass
class OriginState:
    config: OriginConfig
    rng: random.Random
    error_status: int = 0
    computations: int = 0
    failed_computations: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    starts: list[float] = field(default_factory=list)
    redis: aioredis.Redis | None = None
    cache: dict[str, int] = field(default_factory=dict)
    """Cache-aside outcomes: fresh, computed, stale (a lock loser), waited, redis_errors."""


STATE = web.AppKey("state", OriginState)


def cache_control(config: OriginConfig) -> str:
    parts = [f"max-age={config.max_age_s}"]
    if config.stale_while_revalidate_s:
        parts.append(f"stale-while-revalidate={config.stale_while_revalidate_s}")
    if config.stale_if_error_s:
        parts.append(f"stale-if-error={config.stale_if_error_s}")
    return ", ".join(parts)


def create_app(config: OriginConfig) -> web.Application:
    app = web.Application()
    state = app[STATE] = OriginState(config, random.Random(config.seed))
    if config.redis_url:
        state.redis = fail_fast_client(config.redis_url)

        async def close(_app: web.Application) -> None:
            if state.redis is not None:
                await state.redis.aclose()

        app.on_cleanup.append(close)
    app.router.add_get("/hot", hot)
    health.install(app, config.replica_id)
    app.router.add_get("/admin/stats", stats)
    app.router.add_put("/admin/faults", set_faults)
    app.router.add_delete("/admin/faults", reset_faults)
    shutdown.install(app)
    return app


async def hot(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.redis is None:
        return await compute(request)
    try:
        return await cache_aside(request, state, state.redis)
    except RedisError:
        state.cache["redis_errors"] = state.cache.get("redis_errors", 0) + 1
        return await compute(request)


def _count(state: OriginState, outcome: str) -> None:
    state.cache[outcome] = state.cache.get(outcome, 0) + 1


def _cached(body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(body=body, content_type="application/json", headers=headers)


async def cache_aside(request: web.Request, state: OriginState, r: aioredis.Redis) -> web.Response:
    """The answer from Redis while fresh; else computed (by one request only, with
    single-flight) and stored."""
    config = state.config
    headers = {"X-Replica": config.replica_id}
    stored = await r.get(CACHE_KEY)
    entry = json.loads(stored) if stored else None
    if entry and entry["fresh_until"] > time.time():
        _count(state, "fresh")
        return _cached(stored, headers)
    token = secrets.token_hex(8)
    if config.single_flight and not await r.set(LOCK_KEY, token, nx=True, px=config.lock_ms):
        if stored:
            _count(state, "stale")
            return _cached(stored, headers)
        _count(state, "waited")
        deadline = time.time() + config.lock_ms / 1000
        while time.time() < deadline:
            await asyncio.sleep(POLL_S)
            if stored := await r.get(CACHE_KEY):
                return _cached(stored, headers)
    if config.single_flight and (fresh := await _fresh(r)):
        await _unlock(r, token)  # another request refreshed it since we looked
        _count(state, "fresh")
        return _cached(fresh, headers)
    response = await compute(request)
    if response.status == 200 and isinstance(response.body, bytes):
        entry = {**json.loads(response.body), "fresh_until": time.time() + config.max_age_s}
        await r.set(CACHE_KEY, json.dumps(entry), ex=config.max_age_s + KEEP_STALE_S)
        _count(state, "computed")
    if config.single_flight:
        await _unlock(r, token)
    return response


async def _fresh(r: aioredis.Redis) -> bytes | None:
    stored = await r.get(CACHE_KEY)
    return stored if stored and json.loads(stored)["fresh_until"] > time.time() else None


async def _unlock(r: aioredis.Redis, token: str) -> None:
    """Release the lock if it is still ours (it may have expired and been taken)."""
    await r.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end",
        1,
        LOCK_KEY,
        token,
    )


async def compute(request: web.Request) -> web.Response:
    """One computation of the answer: counted, timed, failed while the switch is on."""
    state = request.app[STATE]
    config = state.config
    state.computations += 1
    state.starts.append(round(time.time(), 4))
    state.in_flight += 1
    state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
    try:
        spread = state.rng.uniform(-config.jitter_ms, config.jitter_ms)
        await asyncio.sleep(max(0.0, config.compute_ms + spread) / 1000)
    finally:
        state.in_flight -= 1
    headers = {"X-Replica": config.replica_id}
    if state.error_status:
        state.failed_computations += 1
        return web.json_response({"error": "injected"}, status=state.error_status, headers=headers)
    headers["Cache-Control"] = cache_control(config)
    body = {"key": request.query.get("key", "hot"), "computed_at": time.time()}
    return web.json_response(body, headers=headers)


async def set_faults(request: web.Request) -> web.Response:
    try:
        changes = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        changes = None
    status = changes.get("error_status") if isinstance(changes, dict) else None
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not (status == 0 or 400 <= status <= 599)
    ):
        raise web.HTTPBadRequest(text='expected {"error_status": 0 or 400-599}')
    request.app[STATE].error_status = status
    return web.json_response({"error_status": status})


async def reset_faults(request: web.Request) -> web.Response:
    request.app[STATE].error_status = 0
    return web.json_response({"error_status": 0})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    c = state.config
    return web.json_response(
        {
            "replica": c.replica_id,
            "compute_ms": c.compute_ms,
            "max_age_s": c.max_age_s,
            "cache_control": cache_control(c),
            "error_status": state.error_status,
            "computations": state.computations,
            "failed_computations": state.failed_computations,
            "in_flight": state.in_flight,
            "peak_in_flight": state.peak_in_flight,
            "computation_starts": state.starts,
            "cache": "redis" if c.redis_url else "none",
            "single_flight": c.single_flight,
            "cache_outcomes": dict(sorted(state.cache.items())),
        }
    )
