"""Rate limiting: what nginx, a per-instance bucket and a shared Redis limiter let through.

Two tenants call the api through nginx (round robin over 3 replicas): `noisy`
offers 15x its limit, `quiet` at most 80 % of its own. Every tenant is limited to
LIMIT_RPS. nginx's limit_req holds the rate (burst 0 also refuses a compliant
client's near-simultaneous requests; burst + nodelay admits a burst at once);
a token bucket in each replica admits LIMIT_RPS per replica, so 3x through the
load balancer; GCRA on a shared Redis holds the limit across replicas, and when
Redis dies the limiter fails open (the api stays up, the limit is gone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from labs.engine.metrics import VariantResult
from labs.engine.spec import (
    Check,
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    Plot,
    Series,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.rate_limit.measure import BURST_WINDOW_S, derive

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
NGINX = NginxSpec(
    upstream=Upstream(keepalive=32),  # api keeps idle connections 75 s > nginx's 60 s
    extra_location=("proxy_set_header X-Real-IP $remote_addr",),
)


def nginx_limited(limit_req: str) -> NginxSpec:
    return replace(
        NGINX,
        http_directives=(
            TENANT_KEY,
            f"limit_req_zone $limit_key zone=tenants:1m rate={LIMIT_RPS}r/s",
        ),
        extra_location=NGINX.extra_location
        + (limit_req, "limit_req_status 429", "error_page 429 = @too_many_requests"),
    )


def api(**args: object) -> tuple[ServiceSpec, ...]:
    limit = {"ratelimit-rate": LIMIT_RPS, "ratelimit-burst": APP_BURST} if args else {}
    depends = {"redis-url": "redis"} if args.get("ratelimit") == "redis" else {}
    return (ServiceSpec("api", replicas=REPLICAS, args={**args, **limit}, depends_on=depends),)


NONE = Variant(
    name="none",
    summary=f"no limit: noisy offers {NOISY_RPS}/s and gets it all",
    nginx=NGINX,
    services=api(),
    load=LOAD,
)
NGINX_VARIANT = replace(
    NONE,
    name="nginx",
    summary=f"nginx limit_req {LIMIT_RPS}r/s per API key, burst 0",
    nginx=nginx_limited("limit_req zone=tenants"),
)
NGINX_BURST_VARIANT = replace(
    NONE,
    name="nginx-burst",
    summary=f"nginx limit_req {LIMIT_RPS}r/s, burst={NGINX_BURST} nodelay",
    nginx=nginx_limited(f"limit_req zone=tenants burst={NGINX_BURST} nodelay"),
)
PER_INSTANCE = replace(
    NONE,
    name="per-instance",
    summary=f"token bucket {LIMIT_RPS}/s in each of {REPLICAS} replicas behind round robin",
    services=api(ratelimit="local"),
)
REDIS = replace(
    NONE,
    name="redis",
    summary=f"GCRA {LIMIT_RPS}/s shared on Redis (one Lua script, atomic)",
    services=api(ratelimit="redis", **{"ratelimit-on-error": "open"}),
    parts=("redis",),
)
REDIS_DOWN = replace(
    REDIS,
    name="redis-down",
    summary=f"as redis, Redis stopped at {REDIS_STOP_AT_S} s: the limiter fails open",
    faults=(FaultStep(at_s=REDIS_STOP_AT_S, service="redis", action="stop"),),
)
VARIANTS = (NONE, NGINX_VARIANT, NGINX_BURST_VARIANT, PER_INSTANCE, REDIS, REDIS_DOWN)
LIMITED = tuple(v.name for v in VARIANTS if v.name != "none")


# --- checks ----------------------------------------------------------------------------------


def _noisy(r: VariantResult) -> dict:
    return r.extra["tenants"]["noisy"]  # type: ignore[index]


def _quiet(r: VariantResult) -> dict:
    return r.extra["tenants"]["quiet"]  # type: ignore[index]


def _accepted(r: VariantResult) -> str:
    n = _noisy(r)
    return (
        f"noisy accepted {n['accepted_rps']:.1f}/s of {n['offered_rps']:.0f}/s offered "
        f"({n['accepted_rps'] / LIMIT_RPS:.2f} x the {LIMIT_RPS}/s limit)"
    )


def at_least_times_limit(variant: str, factor: float) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        passed = _noisy(r)["accepted_rps"] >= factor * LIMIT_RPS
        return passed, f"{variant}: {_accepted(r)}, expected >= {factor:g} x"

    return Check(f"{variant}_lets_through_{factor:g}x_the_limit", evaluate, (variant,))


def holds_the_limit(variant: str, tolerance: float = 0.15) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        ratio = _noisy(r)["accepted_rps"] / LIMIT_RPS
        low, high = 1 - tolerance, 1 + tolerance
        return low <= ratio <= high, f"{variant}: {_accepted(r)}, expected {low:g}-{high:g} x"

    return Check(f"{variant}_holds_the_limit", evaluate, (variant,))


def burst_at_once(variant: str, burst: int, contrast: str) -> Check:
    """The burst is admitted at once: >= burst accepted in the first BURST_WINDOW_S."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = _noisy(results[variant])["accepted_first_window"]
        other = _noisy(results[contrast])["accepted_first_window"]
        expected = burst + 1 + LIMIT_RPS * BURST_WINDOW_S
        return n >= burst, (
            f"{variant}: noisy got {n} accepted in its first {BURST_WINDOW_S:g} s "
            f"(burst {burst} + 1 + {LIMIT_RPS}/s x {BURST_WINDOW_S:g} s = {expected:g} possible; "
            f"{contrast} without burst: {other}), expected >= {burst}"
        )

    return Check(f"{variant}_accepts_the_burst_at_once", evaluate, (variant, contrast))


def quiet_unharmed(variant: str, min_pct: float = 99.0, min_requests: int = 50) -> Check:
    """The quiet tenant is not hurt by the noisy one (under 100 requests, none may fail)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        q = _quiet(results[variant])
        passed = q["success_pct"] >= min_pct and q["requests"] >= min_requests
        return passed, (
            f"{variant}: quiet got {q['accepted']} of {q['requests']} accepted "
            f"({q['success_pct']:.1f} %, {q['limited']} x 429, {q['errors']} errors, "
            f"p99 {q['p99_ms']:.1f} ms), expected >= {min_pct:g} % over >= {min_requests}"
        )

    return Check(f"{variant}_quiet_tenant_gets_through", evaluate, (variant,))


def every_429_has_retry_after(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
    total = with_header = problem_json = 0
    per_variant = []
    for name, r in results.items():
        seen = r.extra.get("headers_of_429", {})
        n = sum(t.get("429", 0) for t in seen.values())  # type: ignore[union-attr]
        ok = sum(t.get("retry_after", 0) for t in seen.values())  # type: ignore[union-attr]
        pj = sum(t.get("problem_json", 0) for t in seen.values())  # type: ignore[union-attr]
        total, with_header, problem_json = total + n, with_header + ok, problem_json + pj
        if n:
            per_variant.append(f"{name} {ok}/{n}")
    passed = total > 0 and with_header == total and problem_json == total
    return passed, (
        f"{with_header} of {total} 429s carried Retry-After and {problem_json} were "
        f"problem+json ({', '.join(per_variant) or 'no 429s'}), expected all of them, > 0"
    )


def fails_open(variant: str, tolerance: float = 0.15, factor: float = 3.0) -> Check:
    """Before Redis stops the limit holds; after, the limiter admits everything."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        e = results[variant].extra
        before = float(e.get("noisy_accepted_rps_before", 0.0))  # type: ignore[arg-type]
        after = float(e.get("noisy_accepted_rps_after", 0.0))  # type: ignore[arg-type]
        passed = abs(before / LIMIT_RPS - 1) <= tolerance and after >= factor * LIMIT_RPS
        return passed, (
            f"{variant}: noisy accepted {before:.1f}/s before Redis stopped at "
            f"{e.get('fault_at_s', '?')} s, {after:.1f}/s after; expected "
            f"{1 - tolerance:g}-{1 + tolerance:g} x then >= {factor:g} x the {LIMIT_RPS}/s limit"
        )

    return Check(f"{variant}_fails_open", evaluate, (variant,))


def accepted_per_second(r: VariantResult) -> Series:
    tenants = r.extra.get("tenants", {})
    out = {}
    for tenant in ("noisy", "quiet"):
        ys = tenants.get(tenant, {}).get("accepted_per_s", [])  # type: ignore[union-attr]
        out[f"{tenant} accepted/s"] = (list(range(len(ys))), ys)
    return out


LAB = Lab(
    name="rate-limit",
    title="Rate limiting: nginx, the application, and a shared limit across replicas",
    question="What does each kind of rate limiter really let through behind a load balancer?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        holds_the_limit("nginx"),
        burst_at_once("nginx-burst", NGINX_BURST, contrast="nginx"),
        at_least_times_limit("per-instance", 2.5),
        holds_the_limit("redis"),
        fails_open("redis-down"),
        *(quiet_unharmed(v) for v in LIMITED),
        Check("every_429_carries_retry_after", every_429_has_retry_after, ()),
    ),
    key_metrics=(
        "extra.noisy_offered_rps",
        "extra.noisy_accepted_rps",
        "extra.accepted_over_limit",
        "status.429",
        "extra.quiet_success_pct",
        "extra.quiet_p99_ms",
    ),
    derive=derive(LIMIT_RPS),
    plots=(Plot("Accepted requests per second, by tenant", "accepted/s", accepted_per_second),),
    demo=False,
)
