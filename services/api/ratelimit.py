"""Per-tenant rate limiting for the api: a token bucket in memory, or GCRA on Redis.

Two limiters answer the same question, "may this tenant make a request now, and
if not, when?":

- `LocalLimiter`: a token bucket per tenant in this process. Cheap and exact for
  one process, but behind a load balancer with N replicas each replica admits the
  full rate, so the tenant gets N times its limit (the lab's `per-instance` variant).
- `RedisLimiter`: GCRA (the generic cell rate algorithm) in one Lua script on a
  shared Redis. The script reads and writes the tenant's single key atomically
  (Redis runs a script to completion before any other command), so concurrent
  requests on any replica can never over-admit, and it uses Redis's clock, so the
  replicas' clocks need not agree. No library fits: `limits` offers fixed window,
  moving window and sliding-window counter but no token bucket or GCRA, keeps one
  entry per request for its moving window, and needs a second round trip to compute
  Retry-After; redis-cell (GCRA) is a Redis module Debian's redis-server does not ship.

The middleware answers 429 with Retry-After and a problem+json body. When Redis
cannot be reached it fails OPEN by default (admits, and counts it): a limiter
protects capacity, and an outage of the limiter should not become an outage of
the api. `on_error="closed"` answers 503 instead.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from services.common.problem import problem
from services.common.redis_client import fail_fast_client

API_KEY_HEADER = "X-API-Key"
LIMITED_PATHS = frozenset({"/work"})
"""Only the work endpoint is limited: health checks and admin routes never are."""
MAX_LOCAL_TENANTS = 10_000
EPSILON = 1e-9

OnError = Literal["open", "closed"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    """When a refused request could succeed (0 when allowed)."""


class Limiter(Protocol):
    async def acquire(self, tenant: str) -> Decision: ...


class LimiterUnavailable(Exception):
    """The limiter cannot decide (its store is unreachable); the caller picks open or closed."""


# --- token bucket (per instance) ----------------------------------------------------------


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; a request takes one.

    Time is passed in (`now`, seconds on any monotonic clock), so the arithmetic
    is testable without sleeping. Starts full: a new tenant may burst `capacity`.
    """

    rate: float
    capacity: float
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float) -> Decision:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now if self.updated is None else max(self.updated, now)
        if self.tokens >= 1 - EPSILON:  # 0.1 s at 10/s may sum to 0.9999999999999432
            self.tokens = max(0.0, self.tokens - 1)
            return Decision(True)
        return Decision(False, (1 - self.tokens) / self.rate)

    def full_at(self, now: float) -> bool:
        elapsed = 0.0 if self.updated is None else max(0.0, now - self.updated)
        return self.tokens + elapsed * self.rate >= self.capacity


class LocalLimiter:
    """A token bucket per tenant, in this process only."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        TokenBucket(rate, burst)  # validate once, up front
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    async def acquire(self, tenant: str) -> Decision:
        now = self.clock()
        bucket = self.buckets.get(tenant)
        if bucket is None:
            if len(self.buckets) >= MAX_LOCAL_TENANTS:
                self._forget_full(now)
            bucket = self.buckets[tenant] = TokenBucket(self.rate, self.burst)
        return bucket.take(now)

    def _forget_full(self, now: float) -> None:
        """A full bucket is the same as no bucket: drop those to bound memory."""
        for tenant in [t for t, b in self.buckets.items() if b.full_at(now)]:
            del self.buckets[tenant]


# --- GCRA on Redis (shared by all replicas) -----------------------------------------------

GCRA_LUA = """
-- GCRA: the tenant's key holds its "theoretical arrival time" (TAT, microseconds).
-- A request is admitted unless it comes more than the burst tolerance before the TAT;
-- each admitted request pushes the TAT one emission interval (1 s / rate) further.
-- KEYS[1] tenant key; ARGV[1] interval us; ARGV[2] tolerance us = (burst - 1) * interval;
-- ARGV[3] optional "now" in us (tests only; otherwise Redis's own clock: one clock for
-- every replica). Returns {1, 0} when admitted, {0, retry_after_us} when not.
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call("GET", KEYS[1])) or now
if tat < now then
  tat = now
end
local wait = tat - tolerance - now
if wait > 0 then
  return {0, math.ceil(wait)}
end
local new_tat = tat + interval
-- numbers as integers in strings: Lua would print 1.7e+15 and lose microseconds
redis.call("SET", KEYS[1], string.format("%.0f", new_tat),
           "PX", string.format("%.0f", math.ceil((new_tat - now) / 1000)))
return {1, 0}
"""


class RedisLimiter:
    """GCRA per tenant on a shared Redis: `rate` per second, bursts of up to `burst`.

    After a Redis error it stops asking Redis for `cooldown_s` (every request in
    that window is `LimiterUnavailable` at once), so a dead Redis costs neither a
    connection attempt per request nor latency.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        rate: float,
        burst: int,
        prefix: str = "ratelimit:",
        cooldown_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.client = client
        self.interval_us = 1_000_000 / rate
        self.tolerance_us = (burst - 1) * self.interval_us
        self.prefix = prefix
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.script = client.register_script(GCRA_LUA)
        self.unavailable_until = 0.0

    @classmethod
    def from_url(cls, url: str, rate: float, burst: int, timeout_s: float = 1.0) -> RedisLimiter:
        """A fail-fast client (services.common.redis_client): a spurious timeout would
        fail open for the cooldown, a pool error under load too."""
        return cls(fail_fast_client(url, timeout_s), rate, burst)

    async def acquire(self, tenant: str, now_us: int | None = None) -> Decision:
        if self.clock() < self.unavailable_until:
            raise LimiterUnavailable("redis failed recently")
        args: list[object] = [round(self.interval_us), round(self.tolerance_us)]
        if now_us is not None:
            args.append(now_us)
        try:
            allowed, wait_us = await self.script(keys=[self.prefix + tenant], args=args)
        except (RedisError, OSError) as exc:
            self.unavailable_until = self.clock() + self.cooldown_s
            raise LimiterUnavailable(f"redis: {exc}") from exc
        return Decision(bool(allowed), int(wait_us) / 1_000_000)

    async def close(self) -> None:
        await self.client.aclose()


# --- the middleware -------------------------------------------------------------------------


@dataclass
class RateLimitConfig:
    kind: Literal["local", "redis"]
    rate: float
    """Requests per second per tenant."""
    burst: int
    """Token-bucket capacity / GCRA burst: requests a tenant may make at once."""
    redis_url: str = ""
    on_error: OnError = "open"


@dataclass
class RateLimitState:
    config: RateLimitConfig
    limiter: Limiter
    counts: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Tenant -> {"allowed", "limited", "unavailable"}."""

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.config.kind,
            "rate": self.config.rate,
            "burst": self.config.burst,
            "redis_url": self.config.redis_url,
            "on_error": self.config.on_error,
            "tenants": {tenant: dict(c) for tenant, c in sorted(self.counts.items())},
        }


RATE_LIMIT = web.AppKey("ratelimit", RateLimitState)


def tenant_of(request: web.Request) -> str:
    """The API key, else the client address. X-Real-IP is trusted because only nginx
    (which sets it) can reach the api; a directly exposed api must not trust it."""
    key = request.headers.get(API_KEY_HEADER, "").strip()
    if key:
        return f"key:{key}"
    return f"ip:{request.headers.get('X-Real-IP') or request.remote or 'unknown'}"


def too_many_requests(decision: Decision, tenant: str, rate: float) -> web.Response:
    retry_after = max(1, math.ceil(decision.retry_after_s))
    response = problem(
        429,
        "Too Many Requests",
        f"{tenant} is over its limit of {rate:g} requests/s; retry after {retry_after} s",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def middleware(state: RateLimitState) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def rate_limit(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path not in LIMITED_PATHS:
            return await handler(request)
        tenant = tenant_of(request)
        try:
            decision = await state.limiter.acquire(tenant)
        except LimiterUnavailable:
            state.counts[tenant]["unavailable"] += 1
            if state.config.on_error == "closed":
                response = problem(503, "Service Unavailable", "rate limiter unavailable")
                response.headers["Retry-After"] = "1"
                return response
            return await handler(request)  # fail open
        if not decision.allowed:
            state.counts[tenant]["limited"] += 1
            return too_many_requests(decision, tenant, state.config.rate)
        state.counts[tenant]["allowed"] += 1
        return await handler(request)

    return rate_limit


async def admin_ratelimit(request: web.Request) -> web.Response:
    return web.json_response(request.app[RATE_LIMIT].as_dict())


def install(app: web.Application, config: RateLimitConfig) -> None:
    """Add the limiter middleware and GET /admin/ratelimit (counts per tenant)."""
    if config.kind == "redis":
        if not config.redis_url:
            raise ValueError("the redis limiter needs a Redis URL")
        limiter: Limiter = RedisLimiter.from_url(config.redis_url, config.rate, config.burst)
    else:
        limiter = LocalLimiter(config.rate, config.burst)
    app[RATE_LIMIT] = RateLimitState(config, limiter)
    app.middlewares.append(middleware(app[RATE_LIMIT]))
    app.router.add_get("/admin/ratelimit", admin_ratelimit)
    if isinstance(limiter, RedisLimiter):
        redis_limiter = limiter

        async def close(_app: web.Application) -> None:
            await redis_limiter.close()

        app.on_cleanup.append(close)


# --- command line -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rate limiting (per tenant: X-API-Key, else client address)")
    group.add_argument(
        "--ratelimit",
        choices=("off", "local", "redis"),
        default="off",
        help="off; local: a token bucket in this process; redis: GCRA shared on --redis-url",
    )
    group.add_argument("--ratelimit-rate", type=float, default=10.0, help="requests/s per tenant")
    group.add_argument("--ratelimit-burst", type=int, default=10, help="requests at once")
    group.add_argument("--redis-url", default="", help="redis://127.0.0.1:6379 (for redis)")
    group.add_argument(
        "--ratelimit-on-error",
        choices=("open", "closed"),
        default="open",
        help="when Redis is unreachable: admit (open, default) or answer 503 (closed)",
    )


def config_from_args(args: argparse.Namespace) -> RateLimitConfig | None:
    """The limiter the command line asks for (None: off); ValueError on bad values."""
    if args.ratelimit == "off":
        return None
    if args.ratelimit_rate <= 0 or args.ratelimit_burst < 1:
        raise ValueError("--ratelimit-rate must be > 0 and --ratelimit-burst >= 1")
    if args.ratelimit == "redis" and not args.redis_url:
        raise ValueError("--ratelimit redis needs --redis-url")
    return RateLimitConfig(
        kind=args.ratelimit,
        rate=args.ratelimit_rate,
        burst=args.ratelimit_burst,
        redis_url=args.redis_url,
        on_error=args.ratelimit_on_error,
    )
