"""keep-alive 502: nginx reuses an upstream connection the backend is closing.

nginx keeps idle upstream connections for 60 s; the api closes idle ones after
1 s. When a request lands on a pooled connection just as the api closes it, nginx
gets a reset or an early EOF and answers 502. The fix is the rule "the side that
reuses a connection must give up on it first": the load balancer's idle timeout
shorter than the backend's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.engine import edits
from labs.engine.checks import nginx_errors_at_least, status_absent, status_at_least
from labs.engine.metrics import VariantResult
from labs.engine.nginx import UPSTREAM_RESET_KINDS, parse_time
from labs.engine.spec import Exercise, Lab, LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

API_IDLE_S = 1.0
USERS = 32

# Synchronized bursts: each fires 1 s + offset after the previous burst's median
# response; the offset sweeps -9..-1 ms, where (measured here) a burst lands on
# pooled connections at the moment the api closes them. A burst that lands there
# fails in a clump (5-30 502s) but only about one in four does, so a run needs
# ~24 bursts to reproduce every time.
LOAD = LoadSpec(
    locustfile="synchronized_bursts.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=24,
    env={
        "LAB_METHOD": "POST",
        "LAB_IDLE_MS": str(int(API_IDLE_S * 1000)),
        "LAB_OFFSET_MIN_MS": "-9",
        "LAB_OFFSET_MAX_MS": "-1",
    },
)


def api(idle_timeout_s: float) -> tuple[ServiceSpec, ...]:
    return (ServiceSpec("api", args={"keepalive-timeout": idle_timeout_s}),)


BROKEN = Variant(
    name="broken",
    summary=f"api closes idle connections after {API_IDLE_S:g} s; nginx keeps them 60 s; POST",
    nginx=NginxSpec(upstream=Upstream(keepalive=USERS, keepalive_timeout="60s")),
    services=api(API_IDLE_S),
    load=LOAD,
    twin="fixed",
)
FIXED = replace(
    BROKEN,
    name="fixed",
    summary="api keeps idle connections 75 s, longer than nginx's 60 s; POST",
    services=api(75.0),
    twin="broken",
)
MASKED = replace(
    BROKEN,
    name="masked",
    summary="as broken, but GET: nginx silently retries the reset request on a new connection",
    load=replace(LOAD, env={**LOAD.env, "LAB_METHOD": "GET"}),
    twin="fixed",
)


def settings(variant: Variant) -> str:
    """The exercise's editable file: every knob the fix could live in."""
    upstream = variant.nginx.upstream
    return f"""\
# keepalive-502 exercise. Clients see 502 Bad Gateway under bursty load, yet the
# api never returns an error itself. Change the values below, then run
# `lab grade keepalive-502`.

[api]
# Seconds the api keeps an idle keep-alive connection open before closing it.
keepalive_timeout_s = {variant.services[0].args["keepalive-timeout"]}

[nginx.upstream]
# Idle connections nginx keeps open to the api (its connection pool).
keepalive = {upstream.keepalive}
# How long nginx keeps an idle upstream connection (nginx syntax: 60s, 900ms, 2m).
keepalive_timeout = "{upstream.keepalive_timeout}"
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    api_timeout = edits.number(data, "api.keepalive_timeout_s", 0, 86400, "seconds")
    pool = edits.whole(data, "nginx.upstream.keepalive", 0, 1024)
    timeout = str(edits.table(data, "nginx.upstream")["keepalive_timeout"])  # nginx judges it
    return replace(
        base,
        services=api(api_timeout),
        nginx=replace(
            base.nginx,
            upstream=replace(base.nginx.upstream, keepalive=pool, keepalive_timeout=timeout),
        ),
    )


def count_502(result: VariantResult) -> str:
    n = result.count(502)
    share = 100 * n / result.requests if result.requests else 0.0
    return f"{n} of {result.requests} requests were 502 ({share:.1f} %)"


def pool_removed(variant: Variant) -> str | None:
    if variant.nginx.upstream.keepalive == 0:
        return (
            "keepalive = 0 turns nginx's connection pool off. The 502s go away because "
            "nothing is reused, and every request pays a new TCP connection (under load: "
            "ephemeral ports in TIME_WAIT). Keep the pool; make the two idle timeouts agree."
        )
    return None


def pool_emptied(variant: Variant) -> str | None:
    try:
        seconds = parse_time(variant.nginx.upstream.keepalive_timeout)
    except ValueError:
        return None  # not a time at all: nginx rejects it with its own message
    if seconds < 0.1:
        return (
            "an upstream keepalive_timeout under 100ms closes pooled connections almost "
            "at once, which is the same as having no pool. Keep connections reusable."
        )
    return None


EXERCISE = Exercise(
    task=(
        "Clients see 502 Bad Gateway under a bursty POST load, though the api is healthy, "
        "fast, and never returns an error itself. nginx's error log says "
        '"upstream prematurely closed connection". Look at how long each side of the '
        "nginx -> api hop keeps an idle connection open."
    ),
    broken="broken",
    fixed="fixed",
    settings=settings,
    apply=apply_settings,
    measure=count_502,
    holds=lambda result: result.count(502) == 0 and result.requests >= 200,
    expected="0 502s",
    advice="look at how long each side keeps an idle connection open, and which side "
    "must give up on it first",
    guards=(pool_removed, pool_emptied),
    hints=(
        "A 502 here means nginx sent a request on a connection the api had just closed. "
        "Who closes idle connections first, nginx or the api?",
        "nginx keeps an idle upstream connection for nginx.upstream.keepalive_timeout; the "
        "api closes one after api.keepalive_timeout_s. Compare the two.",
        "The side that reuses connections (nginx) must give up on them before the side that "
        "closes them (the api): make api.keepalive_timeout_s longer than nginx's "
        "keepalive_timeout (e.g. 75 vs 60s), or nginx's shorter than the api's (e.g. 900ms).",
    ),
)

LAB = Lab(
    name="keepalive-502",
    title="Keep-alive mismatch: 502s from a reused upstream connection",
    question="Why does nginx return 502 when the backend is healthy and fast?",
    guide=Path(__file__).with_name("guide.md"),
    variants=(BROKEN, FIXED, MASKED),
    checks=(
        status_at_least("broken", 502, count=10, share=0.01),
        nginx_errors_at_least("broken", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
        status_absent("fixed", 502, min_requests=200),
        # What hides the 502s is nginx retrying a GET; the same load as a POST shows them.
        replace(status_absent("masked", 502, min_requests=200), twins={"masked": "broken"}),
        nginx_errors_at_least("masked", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
    ),
    key_metrics=("requests", "status.200", "status.502", "upstream_retried", "p99_ms"),
    parallel_variants=True,
    exercise=EXERCISE,
)
