"""graceful-shutdown's scenario: a rolling restart of 3 api replicas behind nginx, under load.

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

The constants, the rollout and the variants; it imports only the engine.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import (
    FaultAction,
    FaultStep,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)

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
SHUTDOWN_MODES = ("immediate", "default", "drain")
"""The api's --shutdown-mode choices."""

# What the checks (and the exercise's grade) hold the numbers to.
MIN_ERRORS = 10
"""hard-kill, sigterm-naive: failed requests over the whole rollout."""
MIN_RACES = 5
"""aiohttp-default: upstream resets in nginx's error log that show the keep-alive race."""
MIN_REQUESTS = 2000
"""graceful: requests the clean rollout must have carried."""


def restarts(action: FaultAction, rounds: int = ROUNDS) -> tuple[FaultStep, ...]:
    """The rolling restart: replica 0, 1, 2, 0, ... each `action`ed, then started."""
    steps: list[FaultStep] = []
    for n in range(rounds * REPLICAS):
        at = FIRST_RESTART_S + n * RESTART_EVERY_S
        replica = n % REPLICAS
        steps.append(FaultStep(at, "api", replica=replica, action=action))
        steps.append(FaultStep(at + DOWN_S, "api", replica=replica, action="start"))
    return tuple(steps)


def rounds_of(variant: Variant) -> int:
    """How many times the variant's rollout restarts each replica."""
    return sum(1 for step in variant.faults if step.action == "start") // REPLICAS


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
