"""cache-stampede's scenario: a hot key behind nginx's cache, and what happens each time
its cached answer expires.

clients (Locust) -> nginx (proxy_cache) -> origin (GET /hot: 300-500 ms per computation)

USERS clients ask for the same hot key all the time. The origin says its answer may be
cached for MAX_AGE_S (`Cache-Control: max-age`) and counts every computation, with the
time it started. Without a cache every request computes. With one, each expiry lets
every request that arrives while the new answer is being computed through to the
origin: a stampede, one computation per waiting client. nginx 1.22's
`proxy_cache_lock on` coalesces only the misses of an element that is not in the cache
at all (the cold start): on expiry the stampede is the same. What makes one computation
per expiry is serving the stale answer while one request refreshes it
(`proxy_cache_use_stale updating`, with `proxy_cache_background_update on` that request
too gets the stale answer at once), and the origin's `Cache-Control:
stale-while-revalidate`. When the origin fails for a while, `proxy_cache_use_stale
error timeout http_500 ...` keeps serving the last good answer. The same stampede in the
application: the origin's own cache-aside in Redis, and single-flight (a short Redis
lock: one request recomputes, the others answer with the stale copy).

The constants and the variants; it imports only the engine.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import FaultStep, LoadSpec, NginxSpec, ServiceSpec, Variant

USERS = 200
THINK_S = (0.2, 0.4)
DURATION_S = 16
COMPUTE_MS, JITTER_MS = 400, 100
MAX_AGE_S = 2
SWR_S = 10
"""The origin's `stale-while-revalidate` (seconds a stale answer may be served while
one request refreshes it)."""
OUTAGE_AT_S, OUTAGE_S = 5.0, 8.0
"""The origin fails every computation (500) from 5 s to 13 s after Locust starts."""
CACHE_ZONE = "proxy_cache_path temp/cache levels=1:2 keys_zone=hot:1m max_size=10m"
"""Relative to nginx's prefix (the variant's private folder, or the container's)."""

# What the measurements and the checks hold the numbers to.
BURST_GAP_S = 1.0
"""Computations that start within this of the previous one belong to the same burst
(one expiry's refresh); bursts are MAX_AGE_S apart."""
WARMUP_S = 3.0
"""Latency is measured on requests started after this (the cold fill is over)."""
STAMPEDE_MIN = 10.0
"""A stampede: at least this many computations per expiry."""
COALESCED_MAX = 1.2
"""Coalesced: at most this many computations per expiry (or for the cold fill)."""
MIN_EXPIRIES = 3
SWR_P99_FACTOR = 0.2
"""stale-while-revalidate's p99 is at most this times cache-lock's."""
SERVED_MIN_PCT = 99.0
"""stale-if-error answers at least this share of requests 200 during the outage."""
DOWN_SERVED_MAX_PCT = 50.0
WARM_P99_MAX_MS = 100.0
"""The exercise's bound on p99 after the warm-up (a computation takes 300-500 ms)."""

USE_STALE = ("updating", "error", "timeout", "http_500", "http_502", "http_503", "http_504")
"""What `proxy_cache_use_stale` may name."""


def cache(
    lock: bool = False, use_stale: tuple[str, ...] = (), background: bool = False
) -> tuple[str, ...]:
    """`location /`'s cache directives."""
    directives = ["proxy_cache hot"]
    if lock:
        directives.append("proxy_cache_lock on")
    if use_stale:
        directives.append(f"proxy_cache_use_stale {' '.join(use_stale)}")
    if background:
        directives.append("proxy_cache_background_update on")
    return tuple(directives)


CACHE = cache()
LOCK = cache(lock=True)
SWR = cache(lock=True, use_stale=("updating",), background=True)
STALE_IF_ERROR = cache(lock=True, use_stale=USE_STALE[1:])
OUTAGE = (
    FaultStep(OUTAGE_AT_S, "origin", {"error_status": 500}, label="origin fails"),
    FaultStep(OUTAGE_AT_S + OUTAGE_S, "origin", {"error_status": 0}),
)


def origin(swr_s: int = 0, max_age_s: int = MAX_AGE_S, redis: str = "") -> tuple[ServiceSpec, ...]:
    """The origin; `redis` "cache-aside" or "single-flight": its own cache in Redis."""
    args: dict[str, object] = {
        "compute-ms": COMPUTE_MS,
        "jitter-ms": JITTER_MS,
        "max-age-s": max_age_s,
        "stale-while-revalidate-s": swr_s,
        "seed": 5,
    }
    if not redis:
        return (ServiceSpec("origin", module="services.origin", args=args),)
    args |= {"cache": "redis", "single-flight": "lock" if redis == "single-flight" else "off"}
    return (
        ServiceSpec(
            "origin", module="services.origin", args=args, depends_on={"redis-url": "redis"}
        ),
    )


def nginx(location: tuple[str, ...]) -> NginxSpec:
    zone = (CACHE_ZONE,) if location else ()
    return NginxSpec(backend="origin", extra_location=location, http_directives=zone)


LOAD = LoadSpec(
    locustfile="endpoints.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=DURATION_S,
    env={
        "LAB_ENDPOINTS": f"/hot:{USERS}",
        "LAB_THINK_MIN_S": str(THINK_S[0]),
        "LAB_THINK_MAX_S": str(THINK_S[1]),
    },
)

NO_CACHE = Variant(
    name="no-cache",
    summary=f"no cache: every request computes ({COMPUTE_MS} +- {JITTER_MS} ms)",
    nginx=nginx(()),
    services=origin(),
    load=LOAD,
    explore="the baseline: what the origin does without a cache (every request computes)",
)
CACHED = replace(
    NO_CACHE,
    name="cache",
    summary=f"proxy_cache, the origin's max-age={MAX_AGE_S}",
    nginx=nginx(CACHE),
    explore="",
    twin="stale-while-revalidate",
)
CACHE_LOCK = replace(
    CACHED,
    name="cache-lock",
    summary="proxy_cache + proxy_cache_lock on",
    nginx=nginx(LOCK),
    twin="cache",
)
STALE_WHILE_REVALIDATE = replace(
    CACHED,
    name="stale-while-revalidate",
    summary="+ proxy_cache_use_stale updating, proxy_cache_background_update on, the "
    f"origin's stale-while-revalidate={SWR_S}",
    nginx=nginx(SWR),
    services=origin(SWR_S),
    twin="cache-lock",
)
ORIGIN_DOWN = replace(
    CACHE_LOCK,
    name="origin-down",
    summary=f"cache-lock; the origin fails every computation for {OUTAGE_S:g} s",
    faults=OUTAGE,
    twin="stale-if-error",
)
STALE_IF_ERROR_VARIANT = replace(
    ORIGIN_DOWN,
    name="stale-if-error",
    summary="the same outage, + proxy_cache_use_stale error timeout http_500 ...",
    nginx=nginx(STALE_IF_ERROR),
    twin="origin-down",
)
REDIS_CACHE_ASIDE = replace(
    NO_CACHE,
    name="redis-cache-aside",
    summary=f"no nginx cache; the origin keeps its answer in Redis for {MAX_AGE_S} s (cache-aside)",
    services=origin(redis="cache-aside"),
    parts=("redis",),
    explore="",
    twin="redis-single-flight",
)
REDIS_SINGLE_FLIGHT = replace(
    REDIS_CACHE_ASIDE,
    name="redis-single-flight",
    summary="the same, and only the winner of a short Redis lock (SET NX PX) recomputes; "
    "the others answer with the stale copy",
    services=origin(redis="single-flight"),
    twin="redis-cache-aside",
)
VARIANTS = (
    NO_CACHE,
    CACHED,
    CACHE_LOCK,
    STALE_WHILE_REVALIDATE,
    ORIGIN_DOWN,
    STALE_IF_ERROR_VARIANT,
    REDIS_CACHE_ASIDE,
    REDIS_SINGLE_FLIGHT,
)
