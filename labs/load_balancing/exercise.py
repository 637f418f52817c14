"""load-balancing's exercise: nginx's upstream (balancing, weights, passive health checks)
and next_upstream as a learner edits them, applied to `round-robin`; graded on the slow
phase's latency, every replica used while healthy, and the dead replica failed over."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.engine.topology.nginx import parse_time
from labs.load_balancing.measure import LoadBalancingNumbers
from labs.load_balancing.scenario import (
    BASE_MS,
    ERRORS_STOP_WITHIN_S,
    FAIL_TIMEOUT_S,
    MAX_LATENCY_RATIO,
    REJOINS_WITHIN_S,
    REPLICAS,
    SLOW,
    SLOW_FACTOR,
    SLOW_MS,
)

BALANCE = re.compile(
    r"(least_conn|ip_hash|random( two( least_conn)?)?|hash \$[a-z_]+( consistent)?)?"
)
"""Every balance the file may set: no other directive can ride along into nginx.conf."""
NEXT_UPSTREAM = frozenset(
    {"error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
     "http_403", "http_404", "http_429", "non_idempotent", "off"}
)  # fmt: skip
ROUND_ROBIN_MEAN_MS = (3 * BASE_MS + SLOW_MS) / REPLICAS
"""Round robin's slow-phase mean at best: a quarter of the requests on the slow replica."""
MIN_HEALTHY_SHARE = 0.10


def settings(variant: Variant) -> str:
    """The exercise's editable file: how nginx picks a replica and gives up on one."""
    upstream, proxy = variant.nginx.upstream, variant.nginx.proxy
    replicas = variant.services[0].replicas
    weights = list(upstream.weights) or [1] * replicas
    return f"""\
# load-balancing exercise. Clients' p90 jumps from 50 ms to a whole second whenever one
# of the api replicas turns slow (today it is 20 x slower; tomorrow it may be another
# replica). Later that replica dies and is started again. Change the values below, then
# run `lab grade load-balancing`.

[api]
# Replicas behind nginx (api-1 .. api-{replicas}).
replicas = {replicas}

[nginx.upstream]
# How nginx picks a replica for each request: "" (round robin, nginx's default),
# "least_conn", "random", "random two least_conn", "hash $arg_key consistent", "ip_hash".
balance = "{upstream.balance}"
# Each replica's weight, in order (nginx's default is 1).
weights = {weights}
# Passive health checks: max_fails failed tries within fail_timeout mark a replica
# down for fail_timeout (max_fails = 0: never).
max_fails = {upstream.max_fails}
fail_timeout = "{upstream.fail_timeout}"

[nginx.proxy]
# When nginx tries a request again on the next replica ("off" = never).
next_upstream = "{proxy.next_upstream}"
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    replicas = edits.whole(data, "api.replicas", 1, 8)
    balance = edits.table(data, "nginx.upstream")["balance"]
    if not isinstance(balance, str) or not BALANCE.fullmatch(balance):
        raise ValueError(
            'nginx.upstream.balance must be "", "least_conn", "random", "random two", '
            '"random two least_conn", "ip_hash" or "hash $variable [consistent]"'
        )
    weights = edits.wholes(data, "nginx.upstream.weights", 1, 100)
    if len(weights) != replicas:
        raise ValueError(f"nginx.upstream.weights must list one weight per replica ({replicas})")
    max_fails = edits.whole(data, "nginx.upstream.max_fails", 0, 100)
    fail_timeout = str(edits.table(data, "nginx.upstream")["fail_timeout"])
    parse_time(fail_timeout)  # ValueError: not an nginx time
    next_upstream = str(edits.table(data, "nginx.proxy")["next_upstream"])
    unknown = set(next_upstream.split()) - NEXT_UPSTREAM
    if unknown or not next_upstream.split():
        raise ValueError(
            f"nginx.proxy.next_upstream: unknown {', '.join(sorted(unknown)) or 'empty value'} "
            f"(known: {', '.join(sorted(NEXT_UPSTREAM))})"
        )
    return replace(
        base,
        services=(replace(base.services[0], replicas=replicas),),
        nginx=replace(
            base.nginx,
            upstream=replace(
                base.nginx.upstream,
                balance=balance,
                weights=() if len(set(weights)) == 1 else weights,  # equal = none
                max_fails=max_fails,
                fail_timeout=fail_timeout,
            ),
            proxy=replace(base.nginx.proxy, next_upstream=next_upstream),
        ),
    )


# --- guards: edits that remove the thing under test -----------------------------------------


def slow_replica_removed(variant: Variant) -> str | None:
    if variant.services[0].replicas <= SLOW:
        return (
            f"api.replicas = {variant.services[0].replicas} takes api-{SLOW + 1}, the replica "
            "that turns slow, out of the upstream. Tomorrow another replica is the slow one, "
            "and you have less capacity. Keep every replica; pick them better."
        )
    return None


def weights_with_hindsight(variant: Variant) -> str | None:
    if len(set(variant.nginx.upstream.weights)) > 1:
        return (
            "unequal weights only help because you know which replica will be slow. nginx "
            "must find out on its own, for whichever replica it is. Keep the weights equal."
        )
    return None


def one_replica_for_everyone(variant: Variant) -> str | None:
    balance = variant.nginx.upstream.balance
    if balance == "ip_hash" or "remote_addr" in balance:
        return (
            f"{balance!r} hashes the client address, and every client here is 127.0.0.1: all "
            "requests go to one replica. That is not balancing; the other three sit idle."
        )
    return None


# --- grading ---------------------------------------------------------------------------------


def slow_phase_numbers(result: VariantResult) -> str:
    n = result.numbers(LoadBalancingNumbers)
    back = n.back_after_s
    return (
        f"while api-{SLOW + 1} was {SLOW_FACTOR} x slow it got {n.slow_share_pct:.1f} % of the "
        f"requests, mean {n.slow_mean_ms:.0f} ms, p90 {n.slow_p90_ms:.0f} ms; after it died "
        f"the clients saw {n.dead_errors} errors and nginx sent it {n.dead_tries} new "
        "requests; after its restart it answered again "
        + ("never, before the run ended" if back is None else f"{back} s later")
    )


def holds(result: VariantResult) -> bool:
    """Fast with a slow replica (half round robin's best mean, p90 below the slow
    latency), every replica used while healthy, a dead replica failed over, and back in
    use after its restart (start-up, then nginx's next try after its fail_timeout)."""
    try:
        n = result.numbers(LoadBalancingNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    healthy = n.phase("healthy")
    shares = healthy.share if healthy else {}
    rejoins_within_s = n.fail_timeout_s + REJOINS_WITHIN_S - FAIL_TIMEOUT_S
    return (
        n.slow_mean_ms <= MAX_LATENCY_RATIO * ROUND_ROBIN_MEAN_MS
        and n.slow_p90_ms <= MAX_LATENCY_RATIO * SLOW_MS
        and len(shares) == REPLICAS
        and min(shares.values()) >= MIN_HEALTHY_SHARE
        and n.fails_over(ERRORS_STOP_WITHIN_S, rejoins_within_s)
    )


EXERCISE = Exercise(
    task=(
        "Every so often one api replica turns slow (20 x its usual 50 ms), and the clients' "
        "p90 jumps to a second, though three replicas of four are fine. Later the slow one "
        "dies and is started again. Look at how nginx picks a replica for each request, and "
        "what it does with one that stops answering."
    ),
    broken="round-robin",
    fixed="least-conn",
    settings=settings,
    apply=apply_settings,
    measure=slow_phase_numbers,
    holds=holds,
    expected=(
        f"a slow-phase mean <= {MAX_LATENCY_RATIO * ROUND_ROBIN_MEAN_MS:.0f} ms (half round "
        f"robin's best) and p90 <= {MAX_LATENCY_RATIO * SLOW_MS:.0f} ms, every replica >= "
        f"{MIN_HEALTHY_SHARE:.0%} of the requests while healthy, and the dead replica failed "
        "over (no client errors after fail_timeout + 2 s, one probe per fail_timeout) and "
        f"answered again within fail_timeout + {REJOINS_WITHIN_S - FAIL_TIMEOUT_S:g} s of "
        "being ready after its restart"
    ),
    advice="round robin hands the slow replica its turn whatever it does; which algorithm "
    "looks at how busy each replica is?",
    guards=(slow_replica_removed, weights_with_hindsight, one_replica_for_everyone),
    hints=(
        "A slow replica holds each of its requests 20 x longer than the others. What piles "
        "up on it, that nginx could see?",
        "Requests in flight (connections): nginx.upstream.balance can pick the replica with "
        "the fewest, or the less busy of two picked at random.",
        'Set balance = "least_conn" (or "random two least_conn"): the slow replica keeps '
        "its requests longer, so it has the most in flight and gets a new one only when it "
        'catches up. Keep max_fails = 1 and next_upstream = "error timeout" for the dead '
        "replica.",
    ),
)
