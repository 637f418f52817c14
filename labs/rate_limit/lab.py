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

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import (
    Check,
    Exercise,
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
HOLD_TOLERANCE = 0.15
"""A limit holds when the noisy tenant gets LIMIT_RPS within this share."""

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


def _times(variant: str) -> Callable[[Mapping[str, VariantResult]], float]:
    """The noisy tenant's accepted rate, in multiples of the limit."""
    return lambda results: _noisy(results[variant])["accepted_rps"] / LIMIT_RPS


def at_least_times_limit(variant: str, factor: float) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        passed = _noisy(r)["accepted_rps"] >= factor * LIMIT_RPS
        return passed, f"{variant}: {_accepted(r)}, expected >= {factor:g} x"

    return Check(
        f"{variant}_lets_through_{factor:g}x_the_limit",
        evaluate,
        (variant,),
        measure=_times(variant),
    )


def holds_the_limit(variant: str, tolerance: float = HOLD_TOLERANCE) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        ratio = _noisy(r)["accepted_rps"] / LIMIT_RPS
        low, high = 1 - tolerance, 1 + tolerance
        return low <= ratio <= high, f"{variant}: {_accepted(r)}, expected {low:g}-{high:g} x"

    return Check(f"{variant}_holds_the_limit", evaluate, (variant,), measure=_times(variant))


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

    return Check(
        f"{variant}_accepts_the_burst_at_once",
        evaluate,
        (variant, contrast),
        measure=lambda results: _noisy(results[variant])["accepted_first_window"],
    )


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

    return Check(
        f"{variant}_quiet_tenant_gets_through",
        evaluate,
        (variant,),
        measure=lambda results: _quiet(results[variant])["success_pct"],
    )


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

    def after(results: Mapping[str, VariantResult]) -> float:
        return float(results[variant].extra.get("noisy_accepted_rps_after", 0.0)) / LIMIT_RPS  # type: ignore[arg-type]

    return Check(f"{variant}_fails_open", evaluate, (variant,), measure=after)


def accepted_per_second(r: VariantResult) -> Series:
    tenants = r.extra.get("tenants", {})
    out = {}
    for tenant in ("noisy", "quiet"):
        ys = tenants.get(tenant, {}).get("accepted_per_s", [])  # type: ignore[union-attr]
        out[f"{tenant} accepted/s"] = (list(range(len(ys))), ys)
    return out


# --- exercise --------------------------------------------------------------------------------

LIMITERS = ("off", "local", "redis")


def settings(variant: Variant) -> str:
    """The exercise's editable file: where the api's limiter keeps its counters."""
    args = variant.services[0].args
    return f"""\
# rate-limit exercise. Every tenant is promised {LIMIT_RPS} requests/s, yet the noisy
# tenant gets far more than that through. The api runs as {REPLICAS} replicas behind
# nginx's round robin, and each replica limits what it sees. Change the values below,
# then run `lab grade rate-limit`.

[api.ratelimit]
# Where the limiter keeps its counters: "off" (no limit), "local" (each replica's own
# memory) or "redis" (one Redis shared by all {REPLICAS} replicas).
store = "{args.get("ratelimit", "off")}"
# The tenants' contract: requests per second, and how many may come at once.
rate_per_s = {args.get("ratelimit-rate", LIMIT_RPS)}
burst = {args.get("ratelimit-burst", APP_BURST)}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    store = edits.choice(data, "api.ratelimit.store", LIMITERS)
    rate = edits.number(data, "api.ratelimit.rate_per_s", 0, 10_000, "requests per second")
    burst = edits.whole(data, "api.ratelimit.burst", 1, 1000)
    parts = ("redis",) if store == "redis" else ()
    return replace(base, services=api(store, rate, burst), parts=parts)


def contract_changed(variant: Variant) -> str | None:
    rate = float(variant.services[0].args.get("ratelimit-rate", LIMIT_RPS))  # type: ignore[arg-type]
    if rate != LIMIT_RPS:
        return (
            f"rate_per_s = {rate:g} changes the tenants' contract of {LIMIT_RPS}/s. Dividing "
            f"the limit by the {REPLICAS} replicas holds only while round robin splits every "
            "tenant evenly and the replica count never changes. Keep the rate; make the "
            "replicas count together."
        )
    return None


def noisy_vs_limit(result: VariantResult) -> str:
    return f"{_accepted(result)}; quiet {_quiet(result)['success_pct']:.1f} % accepted"


EXERCISE = Exercise(
    task=(
        f"Every tenant is promised {LIMIT_RPS} requests/s, and each api replica enforces "
        f"it, yet a noisy tenant gets about {REPLICAS} times that through nginx. Look at "
        "where each replica keeps the count of what a tenant has used."
    ),
    broken="per-instance",
    fixed="redis",
    settings=settings,
    apply=apply_settings,
    measure=noisy_vs_limit,
    holds=lambda r: (
        abs(_noisy(r)["accepted_rps"] / LIMIT_RPS - 1) <= HOLD_TOLERANCE
        and _quiet(r)["success_pct"] >= 99.0
    ),
    expected=f"noisy within {1 - HOLD_TOLERANCE:g}-{1 + HOLD_TOLERANCE:g} x the limit, "
    "quiet >= 99 % accepted",
    advice=f"each of the {REPLICAS} replicas admits {LIMIT_RPS}/s on its own; the limit "
    "must be counted in one place that every replica sees",
    guards=(contract_changed,),
    hints=(
        f"Round robin sends each replica a third of the noisy tenant's requests, and each "
        f"replica lets {LIMIT_RPS}/s through. How many does the tenant get in all?",
        "A limit behind a load balancer must be counted where every replica sees the same "
        "count. Which of the stores is shared?",
        'Set store = "redis": every replica runs the same GCRA check, atomically, on one '
        "key per tenant in the shared Redis.",
    ),
)

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
        # A limit per tenant is what spares the quiet one: its twin is one limit for all.
        *(replace(quiet_unharmed(v), twins={v: "global"}) for v in LIMITED),
        Check(
            "every_429_carries_retry_after",
            every_429_has_retry_after,
            (),
            not_applicable="a contract every limiter keeps (Retry-After and problem+json on "
            "each 429), not a fix",
        ),
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
    exercise=EXERCISE,
)
