"""rate-limit's scenario: what nginx, a per-instance bucket and a shared Redis limiter let
through behind a load balancer.

Two tenants call the api through nginx (round robin over 3 replicas): `noisy`
offers 15x its limit, `quiet` at most 80 % of its own. Every tenant is limited to
LIMIT_RPS. nginx's limit_req holds the rate (burst 0 also refuses a compliant
client's near-simultaneous requests; burst + nodelay admits a burst at once);
a token bucket in each replica admits LIMIT_RPS per replica, so 3x through the
load balancer; GCRA on a shared Redis holds the limit across replicas, and when
Redis dies the limiter fails open (the api stays up, the limit is gone).

The constants and the variants; it imports only the engine.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import FaultStep, LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

LIMIT_RPS = 10
"""Every tenant's limit, requests/s, in every limited variant."""
APP_BURST = 10
"""Token-bucket capacity / GCRA burst in the api (per replica for the local bucket)."""
NGINX_BURST = 20
REPLICAS = 3
NOISY_USERS = 12
NOISY_RPS = 150
QUIET_RPS = 8
DURATION_S = 12
REDIS_STOP_AT_S = 6
LIMITERS = ("off", "local", "redis")
"""Where the api's limiter keeps its counters (its --ratelimit option)."""

# What the checks (and the exercise's grade) hold the numbers to.
HOLD_TOLERANCE = 0.15
"""A limit holds when the noisy tenant gets LIMIT_RPS within this share."""
PER_INSTANCE_FACTOR = 2.5
"""per-instance lets the noisy tenant through at least this many times the limit."""
QUIET_MIN_PCT = 99.0
"""The quiet tenant's requests accepted, in %, where each tenant has its own limit (under
100 requests: none may fail)."""
QUIET_MIN_REQUESTS = 50
FAIL_OPEN_TOLERANCE = 0.15
"""redis-down holds the limit within this share before Redis stops..."""
FAIL_OPEN_FACTOR = 3.0
"""...and lets the noisy tenant through at least this many times the limit after."""

LOAD = LoadSpec(
    locustfile="tenants.py",
    users=NOISY_USERS + 1,
    spawn_rate=1000,  # everyone at once: the first 0.5 s shows the burst
    duration_s=DURATION_S,
    env={
        "LAB_NOISY_USERS": str(NOISY_USERS),
        "LAB_NOISY_RPS": str(NOISY_RPS),
        "LAB_QUIET_RPS": str(QUIET_RPS),
    },
)

# The tenant is the API key, or the client address when there is none.
TENANT_KEY = 'map $http_x_api_key $limit_key { "" $binary_remote_addr; default $http_x_api_key; }'
# One key for every request: a single limit that all tenants share.
ONE_KEY = "map $http_x_api_key $limit_key { default everyone; }"
NGINX = NginxSpec(
    upstream=Upstream(keepalive=32),  # api keeps idle connections 75 s > nginx's 60 s
    extra_location=("proxy_set_header X-Real-IP $remote_addr",),
)


def nginx_limited(limit_req: str, key: str = TENANT_KEY) -> NginxSpec:
    return replace(
        NGINX,
        http_directives=(
            key,
            f"limit_req_zone $limit_key zone=tenants:1m rate={LIMIT_RPS}r/s",
        ),
        extra_location=NGINX.extra_location
        + (limit_req, "limit_req_status 429", "error_page 429 = @too_many_requests"),
    )


def api(
    limiter: str = "off", rate: float = LIMIT_RPS, burst: int = APP_BURST
) -> tuple[ServiceSpec, ...]:
    """The api replicas with a limiter: "off", "local" (per replica) or "redis" (shared,
    failing open when Redis is unreachable)."""
    args: dict[str, object] = {}
    if limiter != "off":
        args = {"ratelimit": limiter, "ratelimit-rate": rate, "ratelimit-burst": burst}
    if limiter == "redis":
        args["ratelimit-on-error"] = "open"
    depends = {"redis-url": "redis"} if limiter == "redis" else {}
    return (ServiceSpec("api", replicas=REPLICAS, args=args, depends_on=depends),)


NONE = Variant(
    name="none",
    summary=f"no limit: noisy offers {NOISY_RPS}/s and gets it all",
    nginx=NGINX,
    services=api(),
    load=LOAD,
    explore="the baseline: what the noisy tenant takes with no limit at all",
)
NGINX_VARIANT = replace(
    NONE,
    name="nginx",
    summary=f"nginx limit_req {LIMIT_RPS}r/s per API key, burst 0",
    nginx=nginx_limited("limit_req zone=tenants"),
    explore="",
    twin="none",
)
GLOBAL = replace(
    NGINX_VARIANT,
    name="global",
    summary=f"nginx limit_req {LIMIT_RPS}r/s for all tenants together: the noisy one uses it up",
    nginx=nginx_limited("limit_req zone=tenants", key=ONE_KEY),
    twin="",
)
NGINX_BURST_VARIANT = replace(
    NONE,
    name="nginx-burst",
    summary=f"nginx limit_req {LIMIT_RPS}r/s, burst={NGINX_BURST} nodelay",
    nginx=nginx_limited(f"limit_req zone=tenants burst={NGINX_BURST} nodelay"),
    explore="",
    twin="nginx",
)
PER_INSTANCE = replace(
    NONE,
    name="per-instance",
    summary=f"token bucket {LIMIT_RPS}/s in each of {REPLICAS} replicas behind round robin",
    services=api("local"),
    explore="",
    twin="redis",
)
REDIS = replace(
    NONE,
    name="redis",
    summary=f"GCRA {LIMIT_RPS}/s shared on Redis (one Lua script, atomic)",
    services=api("redis"),
    parts=("redis",),
    explore="",
    twin="per-instance",
)
REDIS_DOWN = replace(
    REDIS,
    name="redis-down",
    summary=f"as redis, Redis stopped at {REDIS_STOP_AT_S} s: the limiter fails open",
    faults=(FaultStep(at_s=REDIS_STOP_AT_S, service="redis", action="stop"),),
    twin="redis",
)
VARIANTS = (NONE, NGINX_VARIANT, NGINX_BURST_VARIANT, PER_INSTANCE, REDIS, REDIS_DOWN, GLOBAL)
LIMITED = tuple(v.name for v in VARIANTS if v.name not in ("none", "global"))
"""Variants that limit each tenant on its own: the quiet tenant must not notice the noisy one."""
