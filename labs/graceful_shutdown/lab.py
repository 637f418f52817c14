"""graceful-shutdown: a rolling restart of 3 api replicas behind nginx, under load.

Shoppers POST orders (stored in Redis, reconciled afterwards) and readers GET /work
through nginx (round robin, a keep-alive pool to the replicas) while the lab restarts
api-1, api-2, api-3, api-1, ... one every few seconds. What a replica does when it is
stopped is the variable:

- `hard-kill`: SIGKILL. In-flight requests die with the process; nginx retries the GETs
  on another replica, never the POSTs it already sent.
- `sigterm-naive`: SIGTERM to a service with no handler (the default action: exit at
  once). To the network it is the same crash.
- `aiohttp-default`: aiohttp's own SIGTERM handling (what the other labs run): close
  the listener, close idle keep-alive connections at once, finish in-flight requests,
  then close each of their connections, with no `Connection: close`: nginx has put it
  back into its pool and sends the next request into it (the keep-alive race). Users
  here send their next request the moment they have an answer, so that happens at
  every restart.
- `graceful`: drain (services.common.shutdown): readiness false, listener closed (new
  connections are refused, which nginx passes to the next replica even for a POST),
  existing connections served with `Connection: close`, idle ones left for nginx to
  close (its upstream keepalive_timeout, 2 s, is shorter than the 4 s drain), then exit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import Request, VariantResult
from labs.engine.analysis.orders import COLLECT_ORDERS, reconcile_run
from labs.engine.model.spec import (
    Check,
    DeriveContext,
    Exercise,
    FaultAction,
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.topology.nginx import UPSTREAM_RESET_KINDS, parse_time

REPLICAS = 3
USERS = 96
"""Half shoppers (POST /orders), half readers (GET /work)."""
THINK_S = (0.0, 0.0)
"""Each user's pause between two requests (LOAD passes it as LAB_THINK_MIN_S/MAX_S): none.
Every answer is followed at once by that user's next request, so requests keep arriving
while a stopping replica's last responses come back. With loadtests/orders.py's default
pauses (0.1-0.3 s) aiohttp-default lost an order in only 4 of 10 runs."""
ROLLOUT_TAIL_S = 4.0
"""The load goes on this long after the last restarted replica has answered."""
MAX_DURATION_S = 90
"""Locust's --run-time, only a cap: the load ends ROLLOUT_TAIL_S after the rollout is
over (loadtests/rolling_restart.py counts the api processes that answered), ~30 s on
the local topology; containers take seconds per restart (more for `sigterm-naive`: a
PID 1 with no handler ignores SIGTERM until docker's SIGKILL after the grace)."""
WORK_MS = 300
"""Every request takes this long in the api (before the order is stored): requests are
in flight at any moment, as in a real service."""
CLIENT_TIMEOUT_S = 5.0
NGINX_IDLE = "2s"
"""nginx's upstream keepalive_timeout: it closes a pooled connection idle this long."""
DRAIN_S = 4.0
"""The api's --shutdown-timeout: longer than nginx's idle timeout, so that every pooled
connection is used (and answered with Connection: close) or closed by nginx first;
shorter than the 5 s the engine waits after SIGTERM before it sends SIGKILL."""
FIRST_RESTART_S = 5.0
RESTART_EVERY_S = 4.0
DOWN_S = 1.0
"""A stopped replica is started again this long after its stop began (once stopped)."""
ROUNDS = 2
"""Each replica is restarted this many times: 6 restarts, the last ~25 s in locally."""
POST_NAME = "/orders"
MIN_ERRORS = 10
MIN_RACES = 5
"""aiohttp-default: upstream resets in nginx's error log that show the keep-alive race."""
MIN_REQUESTS = 2000
# The line services.common.shutdown.DrainReport prints when a drain ends.
DRAIN_LINE = re.compile(
    r"drained in (?P<s>[\d.]+) s: (?P<conns>\d+) connections at SIGTERM, (?P<closing>\d+) "
    r"responses with Connection: close, (?P<left>\d+) left at the deadline"
)


def restarts(action: FaultAction, rounds: int = ROUNDS) -> tuple[FaultStep, ...]:
    """The rolling restart: replica 0, 1, 2, 0, ... each `action`ed, then started."""
    steps: list[FaultStep] = []
    for n in range(rounds * REPLICAS):
        at = FIRST_RESTART_S + n * RESTART_EVERY_S
        replica = n % REPLICAS
        steps.append(FaultStep(at, "api", replica=replica, action=action))
        steps.append(FaultStep(at + DOWN_S, "api", replica=replica, action="start"))
    return tuple(steps)


def api(shutdown_mode: str, drain_s: float = DRAIN_S) -> tuple[ServiceSpec, ...]:
    args = {
        "orders": "redis",
        "idempotency": "off",
        "latency-ms": WORK_MS,
        "shutdown-mode": shutdown_mode,
        "shutdown-timeout": drain_s,
    }
    return (ServiceSpec("api", replicas=REPLICAS, args=args, depends_on={"redis-url": "redis"}),)


def load(rounds: int = ROUNDS) -> LoadSpec:
    """Shoppers and readers until `rounds` restarts of every replica have answered, plus
    ROLLOUT_TAIL_S: the rollout sets the length of the run, whatever the topology."""
    return LoadSpec(
        locustfile="rolling_restart.py",
        users=USERS,
        spawn_rate=USERS,
        duration_s=MAX_DURATION_S,
        env={
            "LAB_CLIENT_ATTEMPTS": "1",
            "LAB_CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
            "LAB_THINK_MIN_S": str(THINK_S[0]),
            "LAB_THINK_MAX_S": str(THINK_S[1]),
            "LAB_ROLLOUT_BOOTS": str(REPLICAS * (rounds + 1)),
            "LAB_ROLLOUT_TAIL_S": str(ROLLOUT_TAIL_S),
        },
    )


LOAD = load()

# proxy_next_upstream stays nginx's default ("error timeout"): a refused connection goes
# to the next replica for any method, a request already sent only for GET/HEAD/...
NGINX = NginxSpec(upstream=Upstream(keepalive=32, keepalive_timeout=NGINX_IDLE))

HARD_KILL = Variant(
    name="hard-kill",
    summary=f"rolling restart with SIGKILL: {ROUNDS * REPLICAS} restarts, no drain",
    nginx=NGINX,
    services=api("default"),
    load=LOAD,
    faults=restarts("kill"),
    parts=("redis",),
    twin="graceful",
)
NAIVE = replace(
    HARD_KILL,
    name="sigterm-naive",
    summary="SIGTERM to a service with no handler: it exits at once, dropping in-flight work",
    services=api("immediate"),
    faults=restarts("stop"),
)
AIOHTTP_DEFAULT = replace(
    NAIVE,
    name="aiohttp-default",
    summary="aiohttp's own SIGTERM handling: listener and idle keep-alive connections closed "
    "at once, in-flight requests finished",
    services=api("default"),
)
GRACEFUL = replace(
    NAIVE,
    name="graceful",
    summary=f"drain on SIGTERM: readiness false, listener closed, Connection: close on every "
    f"response, idle connections left to nginx ({NGINX_IDLE}), exit within {DRAIN_S:g} s",
    services=api("drain"),
    twin="aiohttp-default",
)
VARIANTS = (HARD_KILL, NAIVE, AIOHTTP_DEFAULT, GRACEFUL)


# --- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    duration_s: float
    connections: int
    closing_responses: int
    left: int


def read_drains(log_dir: Path) -> list[Drain]:
    """The drain summaries the api replicas printed on their way out."""
    drains = []
    for log in sorted(log_dir.glob("api-*.log")):
        for match in DRAIN_LINE.finditer(log.read_text(errors="replace")):
            seconds, conns = float(match["s"]), int(match["conns"])
            drains.append(Drain(seconds, conns, int(match["closing"]), int(match["left"])))
    return drains


def failures(requests: Sequence[Request]) -> Counter[int]:
    """Client-visible failures by status (0 = no response at all)."""
    return Counter(q.status for q in requests if not 200 <= q.status < 300)


def restarted(events: Sequence[Mapping[str, object]]) -> Counter[str]:
    """Replica name -> how many times it was started again (a restart that finished)."""
    started: Counter[str] = Counter()
    for event in events:
        processes = event.get("processes")
        if event.get("action") == "start" and isinstance(processes, list):
            started.update(str(name) for name in processes)
    return started


def derive(ctx: DeriveContext) -> dict[str, object]:
    failed = failures(ctx.requests)
    posts = [q for q in ctx.requests if q.name == POST_NAME]
    failed_posts = sum(1 for q in posts if not 200 <= q.status < 300)
    r, _ = reconcile_run(ctx.out_dir)
    drains = read_drains(ctx.out_dir / "logs")
    started = restarted(ctx.result.events)
    return {
        "failed": sum(failed.values()),
        "failed_by_status": {str(code): n for code, n in sorted(failed.items())},
        "posts": len(posts),
        "failed_posts": failed_posts,
        "failed_gets": sum(failed.values()) - failed_posts,
        "finished_intents": r.finished,
        "orders_stored": r.orders,
        "lost_posts": r.lost,
        "duplicates": r.duplicates,
        "mismatches": r.mismatches,
        "upstream_resets": ctx.result.nginx_error_count(*UPSTREAM_RESET_KINDS),
        "restarts": sum(started.values()),
        "replicas_restarted": len(started),
        "last_start_s": max(  # when the last restart began (the engine applies it then)
            (float(e.get("t_s", 0)) for e in ctx.result.events if e.get("action") == "start"),
            default=0.0,
        ),
        "drains": len(drains),
        "drain_max_s": round(max((d.duration_s for d in drains), default=0.0), 2),
        "drain_closing_responses": sum(d.closing_responses for d in drains),
        "drain_connections_left": sum(d.left for d in drains),
    }


# --- checks ----------------------------------------------------------------------------------


def describe_failures(result: VariantResult) -> str:
    """E.g. "23 of 1,840 requests failed (1.2 %: 19 x 502, 4 x 0)"."""
    failed, total = result.number("failed"), result.requests
    by_status = result.extra.get("failed_by_status")
    kinds = ", ".join(f"{n} x {code}" for code, n in dict(by_status or {}).items())
    share = 100 * failed / total if total else 0.0
    return f"{failed:g} of {total:,} requests failed ({share:.1f} %{': ' + kinds if kinds else ''})"


def _posts(result: VariantResult) -> str:
    return (
        f"{result.number('failed_posts'):g} of {result.number('posts'):,.0f} POSTs failed, "
        f"{result.number('lost_posts'):g} orders lost"
    )


def _restarts(result: VariantResult) -> str:
    restarts, replicas = result.number("restarts"), result.number("replicas_restarted")
    return f"{restarts:g} restarts of {replicas:g} replicas"


def errors_reproduced(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        passed = r.number("failed") >= MIN_ERRORS and r.number("restarts") == ROUNDS * REPLICAS
        return passed, (
            f"{variant}: {describe_failures(r)}; {_posts(r)}; {_restarts(r)}; "
            f"expected >= {MIN_ERRORS} failed requests over {ROUNDS * REPLICAS} restarts"
        )

    return Check(f"{variant}_shows_client_errors".replace("-", "_"), evaluate, (variant,))


def holds(r: VariantResult, rounds: int = ROUNDS) -> bool:
    """A whole rolling restart happened and nothing was lost: 0 failed requests, 0 lost
    or duplicated orders, not even a reset nginx hid by retrying a GET."""
    return (
        r.number("failed") == 0
        and r.number("lost_posts") == 0
        and r.number("duplicates") == 0
        and r.number("upstream_resets") == 0
        and r.requests >= MIN_REQUESTS
        and r.number("restarts") >= rounds * REPLICAS
        and r.number("replicas_restarted") == REPLICAS
    )


def zero_errors(variant: str) -> Check:
    """0 failed requests and 0 lost orders over a whole rolling restart that happened:
    every replica restarted, every drain finished with no connection left to cut."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        planned = ROUNDS * REPLICAS
        return holds(r), (
            f"{variant}: {describe_failures(r)}; {_posts(r)}, "
            f"{r.number('duplicates'):g} duplicated; "
            f"{r.number('upstream_resets'):g} upstream resets in nginx's error log; {_restarts(r)} "
            f"(longest drain {r.extra.get('drain_max_s', 0)} s, "
            f"{r.number('drain_connections_left'):g} connections cut at the deadline); expected 0 "
            f"failed, 0 lost, 0 duplicated, 0 resets over >= {MIN_REQUESTS:,} requests and "
            f"{planned} restarts of all {REPLICAS} replicas"
        )

    return Check(f"{variant}_no_client_errors_no_lost_posts", evaluate, (variant,))


def race_reproduced(variant: str) -> Check:
    """aiohttp's own shutdown finishes every in-flight request, then closes its
    connection without telling nginx, which has already pooled it: requests nginx sends
    into those connections fail (GETs retried by nginx, POSTs lost)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        planned = ROUNDS * REPLICAS
        passed = (
            r.number("upstream_resets") >= MIN_RACES
            and r.number("lost_posts") >= 1
            and r.number("restarts") == planned
        )
        return passed, (
            f"{variant}: {r.number('upstream_resets'):g} upstream resets in nginx's error log; "
            f"{describe_failures(r)}; {_posts(r)}; {_restarts(r)}; expected >= {MIN_RACES} "
            f"resets and >= 1 lost order over {planned} restarts"
        )

    return Check(f"{variant}_loses_posts_on_pooled_connections".replace("-", "_"), evaluate,
                 (variant,))  # fmt: skip


CHECKS = (
    errors_reproduced("hard-kill"),
    errors_reproduced("sigterm-naive"),
    race_reproduced("aiohttp-default"),
    zero_errors("graceful"),
)


# --- exercise --------------------------------------------------------------------------------


def rounds_of(variant: Variant) -> int:
    """How many times the variant's rollout restarts each replica."""
    return sum(1 for step in variant.faults if step.action == "start") // REPLICAS


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
    server, upstream = data["api"], data["nginx"]["upstream"]
    mode, timeout = server["shutdown_mode"], server["shutdown_timeout_s"]
    if mode not in ("immediate", "default", "drain"):
        raise ValueError('api.shutdown_mode must be "immediate", "default" or "drain"')
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ValueError("api.shutdown_timeout_s must be a number of seconds, > 0 and <= 60")
    pool = upstream["keepalive"]
    if isinstance(pool, bool) or not isinstance(pool, int) or not 0 <= pool <= 1024:
        raise ValueError("nginx.upstream.keepalive must be a whole number from 0 to 1024")
    rounds = data["rollout"]["rounds"]
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 0 <= rounds <= ROUNDS:
        raise ValueError(f"rollout.rounds must be a whole number from 0 to {ROUNDS}")
    nginx = replace(
        base.nginx,
        upstream=replace(
            base.nginx.upstream,
            keepalive=pool,
            keepalive_timeout=str(upstream["keepalive_timeout"]),
        ),
        proxy=replace(base.nginx.proxy, next_upstream=str(data["nginx"]["proxy"]["next_upstream"])),
    )  # nginx itself judges the syntax of the two strings
    return replace(
        base,
        services=api(mode, float(timeout)),
        nginx=nginx,
        faults=restarts("stop", rounds),
        load=load(rounds),
    )


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


REQUEST_GAP_S = (WORK_MS / 1000 + sum(THINK_S) / 2) * REPLICAS / USERS
"""The mean time between two requests to one replica under LOAD, about 9.4 ms: each user
sends one every 0.3 s (300 ms of work, no pause), round robin over 3 replicas."""
MIN_POOL_IDLE_S = 0.03
"""The shortest nginx upstream keepalive_timeout that is still a pool under this load:
about 3 request gaps. Shorter, nginx closes most idle connections before the next request
for their replica arrives, so none is reused (as with keepalive = 0) and none is idle
when a replica stops. Longer values are real pools here: a pooled connection waits ~9 ms
for its next request, so a bound of 1 s would refuse pools that work."""


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


def lost_requests(result: VariantResult) -> str:
    return (
        f"{describe_failures(result)}, {result.number('lost_posts'):g} orders lost, "
        f"{result.number('upstream_resets'):g} upstream resets in nginx's error log"
    )


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

LAB = Lab(
    name="graceful-shutdown",
    title="Graceful shutdown: a rolling restart with no client-visible errors",
    question="What must a service do on SIGTERM so that a rolling restart behind a load "
    "balancer loses no request, not even a POST on a pooled keep-alive connection?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "requests",
        "extra.failed",
        "extra.failed_posts",
        "extra.lost_posts",
        "status.502",
        "extra.upstream_resets",
        "upstream_retried",
        "extra.restarts",
        "extra.drain_max_s",
    ),
    parallel_variants=True,
    derive=derive,
    collect=(COLLECT_ORDERS,),
    exercise=EXERCISE,
)
