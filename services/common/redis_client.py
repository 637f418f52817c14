"""A Redis client for request paths: fail fast, never hang the event loop on a dead Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def fail_fast_client(
    url: str, timeout_s: float = 1.0, max_connections: int = 32, decode: bool = False
) -> aioredis.Redis:
    """No retries (the caller decides what a Redis error means), and a timeout short
    enough to bound a hung Redis's cost yet longer than a busy 2-core machine's
    scheduling stalls. The pool blocks (up to the timeout) for a free connection: the
    default pool raises "Too many connections" at its limit, an error under mere load."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode,
    )
    return aioredis.Redis.from_pool(pool)
