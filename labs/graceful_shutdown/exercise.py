"""The graceful-shutdown exercise: the learner edits how the api stops, nginx's pool and
retries, and the rollout in a TOML file, applied to `sigterm-naive`; the grade holds the
run to the graceful check's verdict (`GracefulNumbers.rolled_out_clean`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.engine.topology.nginx import parse_time
from labs.graceful_shutdown.measure import GracefulNumbers, describe_failures
from labs.graceful_shutdown.scenario import (
    REPLICAS,
    ROUNDS,
    SHUTDOWN_MODES,
    THINK_S,
    USERS,
    WORK_MS,
    api,
    load,
    restarts,
    rounds_of,
)

REQUEST_GAP_S = (WORK_MS / 1000 + sum(THINK_S) / 2) * REPLICAS / USERS
"""The mean time between two requests to one replica under LOAD, about 9.4 ms: each user
sends one every 0.3 s (300 ms of work, no pause), round robin over 3 replicas."""
MIN_POOL_IDLE_S = 0.03
"""The shortest nginx upstream keepalive_timeout that is still a pool under this load:
about 3 request gaps. Shorter, nginx closes most idle connections before the next request
for their replica arrives, so none is reused (as with keepalive = 0) and none is idle
when a replica stops. Longer values are real pools here: a pooled connection waits ~9 ms
for its next request, so a bound of 1 s would refuse pools that work."""


def settings(variant: Variant) -> str:
    """The exercise's editable file: how the api stops, nginx's pool and retries, and the
    rollout."""
    args, nginx = variant.services[0].args, variant.nginx
    return f"""\
# graceful-shutdown exercise. While the {REPLICAS} api replicas are restarted one after
# another (SIGTERM, then started again on the same port), shoppers get 502 Bad Gateway
# and their orders are lost. Change the values below, then run
# `lab grade graceful-shutdown`.

[api]
# What the api does on SIGTERM:
#   "immediate": nothing: SIGTERM's default action ends the process at once
#   "default":   aiohttp's run_app: close the listener and every idle keep-alive
#                connection at once, let in-flight requests finish
#   "drain":     readiness false, close the listener, answer every request on an
#                open connection with `Connection: close`, wait for the connections
#                to close (the proxy closes idle ones), then exit
shutdown_mode = "{args["shutdown-mode"]}"
# The longest a stop may take, in seconds; connections still open then are closed.
# The lab sends SIGKILL 5 s after SIGTERM, like an orchestrator's grace period.
shutdown_timeout_s = {args["shutdown-timeout"]}

[nginx.upstream]
# Idle connections nginx keeps open to the replicas (its connection pool).
keepalive = {nginx.upstream.keepalive}
# How long nginx keeps an idle upstream connection (nginx syntax: 2s, 900ms, 1m).
keepalive_timeout = "{nginx.upstream.keepalive_timeout}"

[nginx.proxy]
# When nginx passes a failed request to the next replica (proxy_next_upstream).
next_upstream = "{nginx.proxy.next_upstream}"

[rollout]
# How many times each replica is restarted during the load.
rounds = {rounds_of(variant)}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    mode = edits.choice(data, "api.shutdown_mode", SHUTDOWN_MODES)
    timeout = edits.number(data, "api.shutdown_timeout_s", 0, 60, "seconds")
    pool = edits.whole(data, "nginx.upstream.keepalive", 0, 1024)
    rounds = edits.whole(data, "rollout.rounds", 0, ROUNDS)
    upstream, proxy = edits.table(data, "nginx.upstream"), edits.table(data, "nginx.proxy")
    nginx = replace(
        base.nginx,
        upstream=replace(
            base.nginx.upstream,
            keepalive=pool,
            keepalive_timeout=str(upstream["keepalive_timeout"]),
        ),
        proxy=replace(base.nginx.proxy, next_upstream=str(proxy["next_upstream"])),
    )  # nginx itself judges the syntax of the two strings
    return replace(
        base,
        services=api(mode, timeout),
        nginx=nginx,
        faults=restarts("stop", rounds),
        load=load(rounds),
    )


# --- guards: edits that remove the thing under test -----------------------------------------


def rollout_removed(variant: Variant) -> str | None:
    rounds = rounds_of(variant)
    if rounds < ROUNDS:
        return (
            f"rollout.rounds = {rounds} restarts fewer replicas than the rollout under test "
            f"({ROUNDS} rounds of {REPLICAS}). Fewer restarts only means fewer chances to "
            "lose a request. Keep the rollout; make each stop safe."
        )
    return None


def posts_retried_by_nginx(variant: Variant) -> str | None:
    if "non_idempotent" in variant.nginx.proxy.next_upstream.split():
        return (
            "non_idempotent makes nginx re-send a POST the api may already have stored "
            "(a second order, charged twice). A replica's shutdown must not need that: "
            "let it finish what it started."
        )
    return None


def pool_removed(variant: Variant) -> str | None:
    if variant.nginx.upstream.keepalive == 0:
        return (
            "keepalive = 0 turns nginx's connection pool off: no idle connection to race, "
            "and a new TCP connection per request. Keep the pool; make the shutdown "
            "handle pooled connections."
        )
    return None


def pool_emptied(variant: Variant) -> str | None:
    timeout = variant.nginx.upstream.keepalive_timeout
    try:
        seconds = parse_time(timeout)
    except ValueError:
        return None  # not a time at all: nginx rejects it with its own message
    if variant.nginx.upstream.keepalive and seconds < MIN_POOL_IDLE_S:
        return (
            f'nginx.upstream.keepalive_timeout = "{timeout}" closes a pooled connection before '
            f"the next request for its replica arrives (one every ~{REQUEST_GAP_S * 1000:.0f} "
            f"ms here: {USERS} users, each a {WORK_MS} ms request then "
            f"{'no pause' if not THINK_S[1] else f'a {THINK_S[0]:g}-{THINK_S[1]:g} s pause'}, "
            f"over {REPLICAS} replicas). No connection "
            "is reused, so none is idle when a replica stops: the same as keepalive = 0. "
            f"Keep the pool (at least {MIN_POOL_IDLE_S * 1000:.0f}ms); make the shutdown "
            "handle pooled connections."
        )
    return None


# --- grading ---------------------------------------------------------------------------------


def lost_requests(result: VariantResult) -> str:
    n = result.numbers(GracefulNumbers)
    return (
        f"{describe_failures(result)}, {n.lost_posts:g} orders lost, "
        f"{n.upstream_resets:g} upstream resets in nginx's error log"
    )


def holds(result: VariantResult) -> bool:
    """The graceful check's verdict on the learner's run alone."""
    return result.numbers(GracefulNumbers).rolled_out_clean(result.requests)


EXERCISE = Exercise(
    task=(
        "During a rolling restart (each api replica gets SIGTERM and is started again on "
        "the same port, one every 4 s), shoppers get 502 Bad Gateway and their orders are "
        "lost, while reads (GET) never fail. nginx's error log says \"upstream prematurely "
        'closed connection" for the POSTs. Look at what an api replica does with the '
        "requests it is handling, and the connections nginx holds to it, when it is told "
        "to stop."
    ),
    broken="sigterm-naive",
    fixed="graceful",
    settings=settings,
    apply=apply_settings,
    measure=lost_requests,
    holds=holds,
    expected="0 failed requests, 0 lost orders and 0 upstream resets",
    advice="a stopping replica must finish the requests it has and must not close a "
    "connection nginx may be sending a request on",
    guards=(rollout_removed, posts_retried_by_nginx, pool_removed, pool_emptied),
    hints=(
        "GETs survive because nginx retries them on another replica; a POST it already sent "
        "is never retried. Which POSTs fail: ones that were already being handled when "
        "the replica got SIGTERM?",
        'With shutdown_mode = "immediate" the process ends at once, in-flight requests '
        'with it. "default" lets them finish but closes idle keep-alive connections at '
        "once, which races nginx reusing one (the keep-alive 502). What would a stop look "
        "like that never closes a connection nginx may be using?",
        'Set api.shutdown_mode = "drain": the replica stops accepting (nginx gets '
        "connection refused and moves on, even for a POST), answers what arrives on open "
        "connections with Connection: close, and waits for nginx to close the idle ones. "
        "Keep nginx.upstream.keepalive_timeout shorter than api.shutdown_timeout_s.",
    ),
)
