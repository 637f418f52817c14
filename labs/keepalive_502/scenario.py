"""keepalive-502's scenario: nginx reuses an upstream connection the backend is closing.

clients (Locust, synchronized bursts) -> nginx (keep-alive pool) -> api

nginx keeps idle upstream connections for 60 s; the api closes idle ones after 1 s.
When a request lands on a pooled connection just as the api closes it, nginx gets a
reset or an early EOF and answers 502. The fix is the rule "the side that reuses a
connection must give up on it first": the load balancer's idle timeout shorter than
the backend's, and still longer than the gaps in the traffic, or the pool never serves
a second request.

The constants, the checks' thresholds and the variants; it imports only the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

API_IDLE_S = 1.0
USERS = 32
TRAFFIC_GAP_S = 1.0
"""The traffic: a burst of USERS POSTs about once a second (then idle until the next)."""
REUSED_MIN_PCT = 80.0
"""A pool that serves the traffic: at least this share of its requests on a reused
connection (measured here: 100 % with the fix, 29-70 % broken, 2-10 % with nginx's
900ms, under the traffic's gap)."""
SHORT_POOL_REUSED_MAX_PCT = 25.0
"""nginx giving up before the traffic's gap leaves (almost) nothing to reuse."""
MIN_REQUESTS = 200
"""Requests a variant needs for "no 502s" (or any share) to mean something."""
MIN_TRAFFIC = 200
"""Traffic requests (after the traffic's gap) a check needs to judge reuse."""
GRADE_MIN_TRAFFIC = 100
"""The same for a grade, whose run also spends bursts on the probes' gaps."""
BROKEN_MIN_502, BROKEN_MIN_502_SHARE = 10, 0.01
"""broken reproduces: at least this many 502s and this share of all requests."""
API_CLOSED_MIN = USERS
"""broken: the api closes at least one pool's worth of idle connections first."""
DURATION_S = 36
"""Bursts per run: about one in three races the api's close and fails in a clump of 1-31
502s, so 36 of them keep the broken variant far above its 10 502s on a busy machine."""
PROBE_MAX_S = 15.0
"""The longest idle gap a grade drives (it must fit, with the traffic, in one run)."""
CLOSED_FIRST_STRAY = 8
"""A grade tolerates this many idle connections closed by the api first. With nginx
giving up first a few strays happen when the two timeouts are close and nginx's own
timer fires late on a busy machine (short-pool, 900ms vs 1 s: 0-3 per run); with the api
giving up first it closes the whole pool (32) at every gap past its timeout."""
PAST_S = 0.1
"""The probe past a timeout idles this much longer than it."""
OFFSET_MS = (-9, -1)
"""The sweep of each gap, counted from the previous burst's median answer. In nginx's
time the bursts land from about 5 ms before to 10 ms after the gap (its log shows it),
so they straddle an idle timeout of that length: the api's closes race the burst."""


def bursts_load(gaps_s: Sequence[float], method: str = "POST") -> LoadSpec:
    """Synchronized bursts of USERS requests, idling each gap of `gaps_s` in turn."""
    return LoadSpec(
        locustfile="synchronized_bursts.py",
        users=USERS,
        spawn_rate=USERS,
        duration_s=DURATION_S,
        env={
            "LAB_METHOD": method,
            "LAB_IDLE_MS": ",".join(f"{gap * 1000:g}" for gap in gaps_s),
            "LAB_OFFSET_MIN_MS": str(OFFSET_MS[0]),
            "LAB_OFFSET_MAX_MS": str(OFFSET_MS[1]),
        },
    )


# Synchronized bursts a second apart, each fired 1 s + offset after the previous burst's
# median answer: the gaps straddle the broken api's 1 s idle timeout, where (measured
# here) a burst lands on pooled connections at the moment the api closes them.
LOAD = bursts_load([TRAFFIC_GAP_S])


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
    load=bursts_load([TRAFFIC_GAP_S], method="GET"),
    twin="fixed",
)
SHORT_POOL = replace(
    BROKEN,
    name="short-pool",
    summary="nginx drops idle connections after 900ms, before the api's 1 s: no 502s, but "
    "the bursts come ~1 s apart, so no connection is ever reused",
    nginx=NginxSpec(upstream=Upstream(keepalive=USERS, keepalive_timeout="900ms")),
    twin="fixed",
)
VARIANTS = (BROKEN, FIXED, MASKED, SHORT_POOL)
