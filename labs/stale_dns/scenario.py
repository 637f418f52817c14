"""stale-dns's scenario: the api moves to a new address; nginx keeps the old one.

Users (Locust) -> nginx -> the api, which nginx knows by a DNS name (api.lab, answered
by the lab's dnsmasq; on compose, the container's name, answered by Docker's DNS). At
MOVE_AT_S the api moves: a new process on the next address (a new container with a new
IP on compose), the name updated, the old process stopped. `resolve-once` names the api
in an upstream block: nginx resolved it once, at start, and keeps sending to the dead
address. `resolver` puts the name in a variable in proxy_pass with `resolver ... valid=1s`:
nginx asks again once the answer is 1 s old and follows the move. `reload` is
resolve-once plus `nginx -s reload` right after the move: a new config load resolves again.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import FaultStep, LoadSpec, NginxSpec, Proxy, ServiceSpec, Variant

USERS = 20
DURATION_S = 14
MOVE_AT_S = 5.0
TTL_S = 1.0
"""nginx's `resolver ... valid=` and dnsmasq's --local-ttl: how long an answer is kept."""
CLOCK_S = 1.0
"""nginx checks an answer's age on its whole-second clock: one `valid=1s` is kept 1-2 s
(ngx_resolver.c: valid while `valid >= ngx_time()`), so the longest stale window is
TTL_S + CLOCK_S."""
SETTLE_S = TTL_S + CLOCK_S + 1.0
"""The resolver variant may fail requests up to this long after the move has finished:
the longest stale window, plus 1 s."""
MIN_FAILED_PCT = 90.0
"""resolve-once: the share of requests after the move that must fail."""
MIN_REQUESTS = 100
"""Requests a window must hold for its verdict to mean something."""

LOAD = LoadSpec(
    locustfile="steady_users.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=DURATION_S,
    env={"LAB_THINK_MIN_S": "0.05", "LAB_THINK_MAX_S": "0.1"},
)
# On compose the dead address is another container's old IP on the bridge: nothing
# refuses, the connect times out. 500 ms keeps that short.
PROXY = Proxy(connect_timeout="500ms", read_timeout="5s")
MOVE = FaultStep(at_s=MOVE_AT_S, service="api", action="move", label="api moved")
RELOAD = FaultStep(at_s=MOVE_AT_S, service="nginx", action="reload", label="nginx reload")
"""At the same time as the move: applied right after it has finished."""


NGINX = NginxSpec(proxy=PROXY, dns="upstream")
RESOLVE_ONCE = Variant(
    name="resolve-once",
    summary="upstream { server api.lab:PORT; }: nginx resolves the name once, at start",
    nginx=NGINX,
    services=(ServiceSpec("api"),),
    load=LOAD,
    faults=(MOVE,),
    parts=("dns",),
    twin="resolver",
)
RESOLVER = replace(
    RESOLVE_ONCE,
    name="resolver",
    summary=f"resolver ... valid={TTL_S:g}s ipv6=off and the name in a proxy_pass variable: "
    "nginx resolves it again while running",
    nginx=replace(NGINX, dns="resolver", dns_valid=f"{TTL_S:g}s"),
    twin="resolve-once",
)
RELOADED = replace(
    RESOLVE_ONCE,
    name="reload",
    summary="resolve-once, and nginx reloaded right after the move (a deploy hook's "
    "nginx -s reload): the new config load resolves the name again",
    faults=(MOVE, RELOAD),
    twin="resolve-once",
)
VARIANTS = (RESOLVE_ONCE, RESOLVER, RELOADED)
