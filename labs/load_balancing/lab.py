"""load balancing: which algorithm copes with a slow replica, and what nginx's
passive health checks do when one dies and comes back.

Clients (Locust, USERS requests always in flight) -> nginx -> 4 api replicas, each
answering in BASE_MS. Every variant runs the same four phases: all healthy; one
replica turns SLOW_FACTOR x slower; that replica is killed (SIGKILL); it is started
again. Round robin keeps sending it a quarter of the requests whatever it does;
least-conn and power-of-two-choices notice the connections piling up on it and
starve it; static weights avoid it only because someone knew in advance; a
consistent hash keeps every key on its replica, slow or not. The two hash variants
then go through a fifth phase, a scale-in: api-4 is taken out of nginx's upstream
(the config reloaded without it), and the consistent hash moves only api-4's keys
where the plain one reshuffles most of them. Every variant but `no-health-check`
has passive health checks (max_fails=1, fail_timeout) and nginx's default
`proxy_next_upstream error timeout` on GET: a refused connection is retried on
another replica, so the death is invisible to the clients and the dead replica is
only probed once per fail_timeout; `no-health-check` (max_fails=0) shows what
happens without them, and proves every failover check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import (
    Check,
    Exercise,
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    Plot,
    Proxy,
    Series,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.topology.nginx import parse_time
from labs.load_balancing.measure import derive

REPLICAS = 4
SLOW = 3
"""Index of the replica that turns slow, then dies, then comes back (api-4)."""
BASE_MS = 50
SLOW_FACTOR = 20
SLOW_MS = BASE_MS * SLOW_FACTOR
USERS = 8
"""Requests in flight: 2 per replica, enough for least-conn to see a slow replica's
connections pile up (with 1 in flight it would be round robin: every pick a tie at 0)."""
KEYS = 500
"""Asked for in turn: any 500 requests in a row cover every key once."""
MAX_FAILS = 1
FAIL_TIMEOUT = "2s"
FAIL_TIMEOUT_S = 2.0
STARTUP_BUDGET_S = 8.0
"""How long a restarted replica may take to answer /readyz: 0.3-1.5 s alone here, 1.2-5.8 s
measured with all seven variants restarting their api-4 at the same moment on 2 cores."""
REJOINS_WITHIN_S = FAIL_TIMEOUT_S + 2.5
"""From the restarted replica's readiness to its first answer through nginx. nginx tries
a server it marked down again once `now - checked > fail_timeout` on its clock of whole
seconds: up to fail_timeout + 1 s after the last failed try. Then it waits for its turn
(under `weighted`, 1 pick in 61: ~0.5 s)."""
SLOW_AT_S = 4
KILL_AT_S = 10
START_AT_S = 16
DURATION_S = START_AT_S + math.ceil(STARTUP_BUDGET_S + REJOINS_WITHIN_S) + 1
"""The `back` phase outlasts start-up and rejoining: every run shows the replica return."""
RELOAD_SETTLE_S = 1.0
"""After nginx's reload, requests the old worker still held are left out of the keys."""
REMOVED_PHASE_S = 10
"""The hash variants' scale-in phase. The keys are asked for in turn, so a window holds
min(KEYS, its requests) keys, and its requests depend on the machine's speed: compose once
saw 376 keys (< MIN_KEYS_COMPARED) when "before" was only the healthy and slow phases (a
hash runs at ~30 requests/s while a replica is 20 x slow). "Before" now also holds the
back phase once api-4 answers again (~1,000+ requests here), and "after" these 10 s less
RELOAD_SETTLE_S: 1,460-1,610 requests here (~170/s); 400 keys need only 45/s."""
REMOVE_AT_S = DURATION_S
HASH_DURATION_S = REMOVE_AT_S + REMOVED_PHASE_S
ERRORS_STOP_WITHIN_S = FAIL_TIMEOUT_S + 2
MAX_LATENCY_RATIO = 0.5
MAX_SHARE_RATIO = 0.5
MAX_KEYS_MOVED_PCT = 35.0
MIN_PLAIN_MOVED_PCT = 60.0
MIN_KEYS_COMPARED = 400
MIN_SLOW_PHASE_REQUESTS = 100

LOAD = LoadSpec(
    locustfile="keyed_users.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=DURATION_S,
    env={"LAB_KEYS": str(KEYS)},
)
API = (ServiceSpec("api", replicas=REPLICAS, args={"latency-ms": BASE_MS}),)
FAULTS = (
    FaultStep(
        at_s=SLOW_AT_S,
        service="api",
        replica=SLOW,
        settings={"latency_ms": SLOW_MS},
        label="slow",
    ),
    FaultStep(at_s=KILL_AT_S, service="api", replica=SLOW, action="kill", label="dead"),
    FaultStep(at_s=START_AT_S, service="api", replica=SLOW, action="start", label="back"),
)
UPSTREAM = Upstream(keepalive=32, max_fails=MAX_FAILS, fail_timeout=FAIL_TIMEOUT)
# nginx's default next_upstream, written out: a GET whose connection is refused or
# reset is tried again on the next replica, the client never sees it.
NGINX = NginxSpec(upstream=UPSTREAM, proxy=Proxy(next_upstream="error timeout"))


def balanced(name: str, summary: str, twin: str = "", **upstream: object) -> Variant:
    return replace(
        ROUND_ROBIN,
        name=name,
        summary=summary,
        twin=twin,
        nginx=replace(NGINX, upstream=replace(UPSTREAM, **upstream)),  # type: ignore[arg-type]
    )


ROUND_ROBIN = Variant(
    name="round-robin",
    summary=f"nginx's default: each of the {REPLICAS} replicas in turn, slow or not",
    nginx=NGINX,
    services=API,
    load=LOAD,
    faults=FAULTS,
    twin="least-conn",
)
LEAST_CONN = balanced(
    "least-conn",
    "least_conn: the replica with the fewest requests in flight",
    twin="round-robin",
    balance="least_conn",
)
P2C = balanced(
    "p2c",
    "random two least_conn: two replicas at random, the one with fewer in flight",
    twin="round-robin",
    balance="random two least_conn",
)
WEIGHTED = balanced(
    "weighted",
    f"round robin with api-4 weighted 1 against {SLOW_FACTOR}: someone knew in advance",
    weights=tuple(1 if i == SLOW else SLOW_FACTOR for i in range(REPLICAS)),
)
NO_HEALTH_CHECK = balanced(
    "no-health-check",
    "round robin with max_fails=0: nginx never marks the dead replica down",
    max_fails=0,
)
SCALE_IN = FaultStep(at_s=REMOVE_AT_S, service="api", replica=SLOW, action="remove")
"""api-4 taken out of nginx's upstream (config re-rendered, nginx reloaded): a scale-in."""


def hashed(name: str, summary: str, balance: str, twin: str = "") -> Variant:
    """Keyed balancing, with the scale-in after the other phases."""
    return replace(
        balanced(name, summary, twin=twin, balance=balance),
        faults=(*FAULTS, SCALE_IN),
        load=replace(LOAD, duration_s=HASH_DURATION_S),
    )


HASH = hashed(
    "hash",
    f"hash $arg_key consistent: each of {KEYS} keys sticks to its replica (a ketama ring)",
    "hash $arg_key consistent",
    twin="hash-plain",
)
HASH_PLAIN = hashed(
    "hash-plain",
    "hash $arg_key: the key's hash modulo the number of servers",
    "hash $arg_key",
)
VARIANTS = (ROUND_ROBIN, LEAST_CONN, P2C, WEIGHTED, HASH, HASH_PLAIN, NO_HEALTH_CHECK)
BALANCERS = (ROUND_ROBIN, LEAST_CONN, P2C, WEIGHTED, HASH)
"""The variants with passive health checks, each judged by fails_over."""


# --- checks ----------------------------------------------------------------------------------


def _slow_phase(result: VariantResult) -> Mapping[str, object]:
    return result.extra.get("by_phase", {}).get("slow", {})  # type: ignore[union-attr]


def faster_than_round_robin(variant: str, baseline: str = "round-robin") -> Check:
    """With one replica slow, mean and p90 at most MAX_LATENCY_RATIO x round robin's."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r, base = results[variant], results[baseline]
        mean, p90 = r.number("slow_mean_ms"), r.number("slow_p90_ms")
        base_mean, base_p90 = base.number("slow_mean_ms"), base.number("slow_p90_ms")
        mean_ratio, p90_ratio = mean / base_mean, p90 / base_p90
        count = _slow_phase(r).get("requests", 0)
        passed = (
            mean_ratio <= MAX_LATENCY_RATIO
            and p90_ratio <= MAX_LATENCY_RATIO
            and count >= MIN_SLOW_PHASE_REQUESTS
        )
        return passed, (
            f"one replica {SLOW_FACTOR} x slow, {USERS} requests in flight: {variant} mean "
            f"{mean:.0f} ms, p90 {p90:.0f} ms vs {baseline} {base_mean:.0f} ms / "
            f"{base_p90:.0f} ms ({mean_ratio:.2f} x / {p90_ratio:.2f} x) over {count} "
            f"requests, expected <= {MAX_LATENCY_RATIO:g} x both"
        )

    name = f"{variant}_beats_{baseline}_with_a_slow_replica".replace("-", "_")
    return Check(name, evaluate, (variant, baseline))


def avoids_the_slow_replica(variant: str, baseline: str = "round-robin") -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r, base = results[variant], results[baseline]
        share, base_share = r.number("slow_share_pct"), base.number("slow_share_pct")
        ratio = share / base_share if base_share else float("nan")
        return ratio < MAX_SHARE_RATIO, (
            f"the slow replica {r.extra.get('slow_replica', '?')} got {share:.1f} % of "
            f"{variant}'s requests vs {base_share:.1f} % of {baseline}'s "
            f"({ratio:.2f} x), expected < {MAX_SHARE_RATIO:g} x"
        )

    name = f"{variant}_starves_the_slow_replica".replace("-", "_")
    return Check(name, evaluate, (variant, baseline))


def fails_over(variant: str, twin: str = "no-health-check") -> Check:
    """After the replica dies, the clients' errors stop within fail_timeout + 2 s (GET,
    proxy_next_upstream on); nginx ejects it: only one try per fail_timeout reaches it
    (a probe) until it answers again; and once restarted and ready it answers again
    through nginx within REJOINS_WITHIN_S. Re-judged against `twin`, the same experiment
    with passive health checks off (max_fails=0), where nginx keeps trying it."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        e = results[variant].extra
        last, rejoined = e.get("last_error_after_s"), e.get("rejoined_after_s")
        tries, allowed = e.get("dead_tries", 0), e.get("dead_tries_allowed")
        errors_stop = last is None or float(last) <= ERRORS_STOP_WITHIN_S  # type: ignore[arg-type]
        ejected = allowed is not None and int(tries) <= int(allowed)  # type: ignore[call-overload]
        came_back = rejoined is not None and float(rejoined) <= REJOINS_WITHIN_S  # type: ignore[arg-type]
        last_text = "none" if last is None else f"the last {last} s after"
        if e.get("back_after_s") is None:
            back_text = "never, before the run ended"
        else:
            back_text = f"{e['back_after_s']} s after its restart began ({rejoined} s after"
        return errors_stop and ejected and came_back, (
            f"{variant}: {e.get('dead_replica', '?')} killed; clients saw "
            f"{e.get('dead_errors', '?')} errors ({last_text}), expected none later than "
            f"fail_timeout {FAIL_TIMEOUT_S:g} s + 2 s; nginx sent it {tries} new requests "
            f"while it was down ({e.get('dead_in_flight', '?')} more were in flight when it "
            f"died), expected <= {allowed} (one probe per fail_timeout); restarted, it was "
            f"ready after {e.get('ready_after_s', '?')} s and answered again {back_text} it "
            f"was ready), expected <= {REJOINS_WITHIN_S:g} s after (fail_timeout + 1 s on "
            "nginx's whole-second clock, then its turn)"
        )

    return Check(
        f"{variant}_fails_over_a_dead_replica".replace("-", "_"),
        evaluate,
        (variant,),
        twins={variant: twin},
    )


def consistent_hash_moves_few_keys(consistent: str = "hash", plain: str = "hash-plain") -> Check:
    """When a replica is taken out of the upstream (a scale-in), a consistent hash moves
    only its keys, at most MAX_KEYS_MOVED_PCT of them, while a plain hash (modulo the
    number of servers) moves at least MIN_PLAIN_MOVED_PCT: both measured, per key, from
    the replica that answered it before and after. Re-judged with `plain` standing in
    for `consistent` (the consistent variant's twin)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        c, p = results[consistent], results[plain]
        moved, plain_moved = c.number("removed_keys_moved_pct"), p.number("removed_keys_moved_pct")
        compared = [int(r.extra.get("removed_keys_compared", 0)) for r in (c, p)]  # type: ignore[call-overload]
        passed = (
            moved <= MAX_KEYS_MOVED_PCT
            and plain_moved >= MIN_PLAIN_MOVED_PCT
            and min(compared) >= MIN_KEYS_COMPARED
        )
        e = c.extra
        return passed, (
            f"{e.get('slow_replica', '?')} taken out of the upstream (nginx reloaded): "
            f"{consistent} moved {e.get('removed_keys_moved', '?')} of {compared[0]} keys "
            f"({moved:.1f} %; {e.get('removed_keys_of_it', '?')} were its own, "
            f"{e.get('removed_keys_moved_not_of_it', '?')} moved from a replica that stayed), "
            f"expected <= {MAX_KEYS_MOVED_PCT:g} %; {plain} moved "
            f"{p.extra.get('removed_keys_moved', '?')} of {compared[1]} ({plain_moved:.1f} %), "
            f"expected >= {MIN_PLAIN_MOVED_PCT:g} %; over >= {MIN_KEYS_COMPARED} keys each"
        )

    return Check(
        "hash_consistent_moves_only_the_removed_replicas_keys",
        evaluate,
        (consistent, plain),
    )


# --- plots -----------------------------------------------------------------------------------


def _phase_steps(result: VariantResult, value) -> Series:  # noqa: ANN001
    """A step per phase: each label's value holds from its phase's start to the next."""
    phase_list = result.extra.get("phases", [])
    by_phase = result.extra.get("by_phase", {})
    xs = [float(p["start_s"]) for p in phase_list]  # type: ignore[index]
    labels: dict[str, list[float]] = {}
    for p in phase_list:
        for label, y in value(by_phase[p["name"]]).items():  # type: ignore[index]
            labels.setdefault(label, []).append(y)
    return {label: (xs, ys) for label, ys in labels.items()}


def share_by_phase(result: VariantResult) -> Series:
    return _phase_steps(result, lambda n: {k: 100 * v for k, v in n["share"].items()})


def latency_by_phase(result: VariantResult) -> Series:
    return _phase_steps(result, lambda n: {"mean": n["mean_ms"], "p90": n["p90_ms"]})


def answers_per_second(result: VariantResult) -> Series:
    counts = result.extra.get("per_second", {})
    return {name: (list(range(len(ys))), ys) for name, ys in counts.items()}  # type: ignore[union-attr]


# --- exercise --------------------------------------------------------------------------------

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


def _whole(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return value


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    replicas = _whole(data["api"]["replicas"], "api.replicas", 1, 8)
    upstream, proxy = data["nginx"]["upstream"], data["nginx"]["proxy"]
    balance = upstream["balance"]
    if not isinstance(balance, str) or not BALANCE.fullmatch(balance):
        raise ValueError(
            'nginx.upstream.balance must be "", "least_conn", "random", "random two", '
            '"random two least_conn", "ip_hash" or "hash $variable [consistent]"'
        )
    weights = upstream["weights"]
    if not isinstance(weights, list) or len(weights) != replicas:
        raise ValueError(f"nginx.upstream.weights must list one weight per replica ({replicas})")
    weights = [_whole(w, "each of nginx.upstream.weights", 1, 100) for w in weights]
    max_fails = _whole(upstream["max_fails"], "nginx.upstream.max_fails", 0, 100)
    fail_timeout = str(upstream["fail_timeout"])
    parse_time(fail_timeout)  # ValueError: not an nginx time
    next_upstream = str(proxy["next_upstream"])
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
                weights=() if len(set(weights)) == 1 else tuple(weights),  # equal = none
                max_fails=max_fails,
                fail_timeout=fail_timeout,
            ),
            proxy=replace(base.nginx.proxy, next_upstream=next_upstream),
        ),
    )


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


def slow_phase_numbers(result: VariantResult) -> str:
    e = result.extra
    share, mean = result.number("slow_share_pct"), result.number("slow_mean_ms")
    back = e.get("back_after_s")
    return (
        f"while api-{SLOW + 1} was {SLOW_FACTOR} x slow it got {share:.1f} % of the requests, "
        f"mean {mean:.0f} ms, p90 {result.number('slow_p90_ms'):.0f} ms; after it died the "
        f"clients saw {e.get('dead_errors', '?')} errors and nginx sent it "
        f"{e.get('dead_tries', '?')} new requests; after its restart it answered again "
        + ("never, before the run ended" if back is None else f"{back} s later")
    )


def holds(result: VariantResult) -> bool:
    """Fast with a slow replica (half round robin's best mean, p90 below the slow
    latency), every replica used while healthy, a dead replica failed over, and back in
    use after its restart (start-up, then nginx's next try after its fail_timeout)."""
    e = result.extra
    healthy = e.get("by_phase", {}).get("healthy", {}).get("share", {})  # type: ignore[union-attr]
    allowed = e.get("dead_tries_allowed")
    last, rejoined = e.get("last_error_after_s"), e.get("rejoined_after_s")
    fail_timeout = float(e.get("fail_timeout_s", FAIL_TIMEOUT_S))  # type: ignore[arg-type]
    return (
        result.number("slow_mean_ms") <= MAX_LATENCY_RATIO * ROUND_ROBIN_MEAN_MS
        and result.number("slow_p90_ms") <= MAX_LATENCY_RATIO * SLOW_MS
        and len(healthy) == REPLICAS
        and min(healthy.values()) >= MIN_HEALTHY_SHARE
        and (last is None or float(last) <= ERRORS_STOP_WITHIN_S)  # type: ignore[arg-type]
        and allowed is not None
        and int(e.get("dead_tries", 0)) <= int(allowed)  # type: ignore[call-overload]
        and rejoined is not None
        and float(rejoined) <= fail_timeout + REJOINS_WITHIN_S - FAIL_TIMEOUT_S  # type: ignore[arg-type]
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

LAB = Lab(
    name="load-balancing",
    title="Load balancing: algorithms against a slow replica, passive health checks, a dead one",
    question="Why does the balancing algorithm matter when one replica is slow, and what do "
    "nginx's passive health checks do when a replica dies and comes back?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        faster_than_round_robin("least-conn"),
        faster_than_round_robin("p2c"),
        avoids_the_slow_replica("least-conn"),
        *(fails_over(v.name) for v in BALANCERS),
        consistent_hash_moves_few_keys(),
    ),
    key_metrics=(
        "requests",
        "extra.slow_share_pct",
        "extra.slow_mean_ms",
        "extra.slow_p90_ms",
        "extra.dead_in_flight",
        "extra.dead_tries",
        "extra.dead_errors",
        "extra.back_after_s",
        "extra.rejoined_after_s",
    ),
    derive=derive,
    plots=(
        Plot("Share of the answers per replica, by phase", "% of answers", share_by_phase, "step"),
        Plot("Answers per second, by replica", "answers/s", answers_per_second, "step"),
        Plot("Latency by phase: mean and p90", "ms", latency_by_phase, "step"),
    ),
    parallel_variants=True,
    demo=False,
    exercise=EXERCISE,
)
