"""keep-alive 502: nginx reuses an upstream connection the backend is closing.

nginx keeps idle upstream connections for 60 s; the api closes idle ones after
1 s. When a request lands on a pooled connection just as the api closes it, nginx
gets a reset or an early EOF and answers 502. The fix is the rule "the side that
reuses a connection must give up on it first": the load balancer's idle timeout
shorter than the backend's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from labs.engine.checks import nginx_errors_at_least, status_absent, status_at_least
from labs.engine.nginx import UPSTREAM_RESET_KINDS
from labs.engine.spec import Lab, LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

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
)
FIXED = replace(
    BROKEN,
    name="fixed",
    summary="api keeps idle connections 75 s, longer than nginx's 60 s; POST",
    services=api(75.0),
)
MASKED = replace(
    BROKEN,
    name="masked",
    summary="as broken, but GET: nginx silently retries the reset request on a new connection",
    load=replace(LOAD, env={**LOAD.env, "LAB_METHOD": "GET"}),
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
        status_absent("masked", 502, min_requests=200),
        nginx_errors_at_least("masked", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
    ),
    key_metrics=("requests", "status.200", "status.502", "upstream_retried", "p99_ms"),
    parallel_variants=True,
)
