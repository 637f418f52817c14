"""load-balancing's scenario: which algorithm copes with a slow replica, and what nginx's
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

The constants and the variants; it imports only the engine.
"""

from __future__ import annotations

import math
from dataclasses import replace

from labs.engine.model.spec import (
    FaultStep,
    LoadSpec,
    NginxSpec,
    Proxy,
    ServiceSpec,
    Upstream,
    Variant,
)

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
"""Requests that start this soon after nginx's reload (the end of the remove action, which
tests the new config first) are left out of where keys went: the old worker still answers
the requests it holds, by the old upstream."""
REMOVED_PHASE_S = 20
"""The hash variants' scale-in phase. The keys are asked for in turn, so a window holds
min(KEYS, its requests) keys, and its requests depend on the machine's speed: compose once
saw 376 keys (< MIN_KEYS_COMPARED) when "before" was only the healthy and slow phases (a
hash runs at ~30 requests/s while a replica is 20 x slow). "Before" now also holds the
back phase once api-4 answers again (~1,000+ requests here), and "after" this phase less
the remove action and RELOAD_SETTLE_S. The remove action's `nginx -t` runs through
`docker exec` on compose and once took 6.4 s there, leaving 152 keys of a 10 s phase;
20 s leaves room for twice that (400 keys need ~2.5 s at ~170 requests/s)."""
REMOVE_AT_S = DURATION_S
HASH_DURATION_S = REMOVE_AT_S + REMOVED_PHASE_S
PHASE_OF_ACTION = {"settings": "slow", "kill": "dead", "start": "back", "remove": "removed"}
"""Each phase is named by the fault action that began it; the first is FIRST_PHASE."""
FIRST_PHASE = "healthy"

# What the checks (and the exercise's grade) hold the numbers to.
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

ROUND_ROBIN = Variant(
    name="round-robin",
    summary=f"nginx's default: each of the {REPLICAS} replicas in turn, slow or not",
    nginx=NGINX,
    services=API,
    load=LOAD,
    faults=FAULTS,
    twin="least-conn",
)


def balanced(name: str, summary: str, upstream: Upstream, twin: str = "") -> Variant:
    """Round robin's experiment with another upstream block."""
    return replace(
        ROUND_ROBIN, name=name, summary=summary, twin=twin, nginx=replace(NGINX, upstream=upstream)
    )


LEAST_CONN = balanced(
    "least-conn",
    "least_conn: the replica with the fewest requests in flight",
    replace(UPSTREAM, balance="least_conn"),
    twin="round-robin",
)
P2C = balanced(
    "p2c",
    "random two least_conn: two replicas at random, the one with fewer in flight",
    replace(UPSTREAM, balance="random two least_conn"),
    twin="round-robin",
)
WEIGHTED = balanced(
    "weighted",
    f"round robin with api-4 weighted 1 against {SLOW_FACTOR}: someone knew in advance",
    replace(UPSTREAM, weights=tuple(1 if i == SLOW else SLOW_FACTOR for i in range(REPLICAS))),
)
NO_HEALTH_CHECK = balanced(
    "no-health-check",
    "round robin with max_fails=0: nginx never marks the dead replica down",
    replace(UPSTREAM, max_fails=0),
)
SCALE_IN = FaultStep(at_s=REMOVE_AT_S, service="api", replica=SLOW, action="remove")
"""api-4 taken out of nginx's upstream (config re-rendered, nginx reloaded): a scale-in."""


def hashed(name: str, summary: str, balance: str, twin: str = "") -> Variant:
    """Keyed balancing, with the scale-in after the other phases."""
    return replace(
        balanced(name, summary, replace(UPSTREAM, balance=balance), twin=twin),
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
