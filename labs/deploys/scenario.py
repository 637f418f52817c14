"""deploys' scenario: v1 and v2 of the api behind one nginx under steady load, and five
ways of moving the traffic from one to the other.

api-1 runs v1; api-2 runs v2, started beside it but `down` in nginx's upstream until a
rollout gives it weight. In the first three variants v2 is a bad release (30 % of its
answers are 500s); in the cold-start pair v2 is good but cold for its first seconds
(one request at a time, 25 ms each). The rollout itself is rollout.py: a controller
the runner starts beside the load, which changes nginx's weights through reloads.

- big-bang: at DEPLOY_AT_S stop v1 and v2, start v2 again, send it everything: 502s
  while nothing listens, then v2's 500s on all traffic to the end.
- blue-green: v2 is already up; one reload sends it everything, the gate watches its
  error rate and one reload sends everything back.
- canary: v2 gets 1 %, 10 %, 50 %, 100 % of the traffic through reloads, with the same
  gate: it rolls back at the first gate interval over the threshold.
- cold-start-full / cold-start-ramped: the cold v2 gets half the traffic at once, or a
  weight ramped over reloads while it warms up (slow start, which open-source nginx lacks).
"""

from __future__ import annotations

from dataclasses import replace

from labs.deploys.rollout import Plan
from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant

USERS = 40
THINK_S = (0.1, 0.3)
"""Each user waits this long between requests: about 200 requests/s in all."""
DURATION_S = 18
DEPLOY_AT_S = 5.0
"""When the rollout begins (seconds into the load)."""
BAD_RELEASE = {"release": "v2", "error-status": 500, "error-rate": 0.3}
COLD_START_S = 4.0
COLD_START_MS = 25.0
"""While cold, v2 serves one request at a time: 40 requests/s at most."""
GATE_INTERVAL_S = 1.0
GATE_THRESHOLD = 0.05
"""The gate rolls back when more than 5 % of v2's answers in one interval are 5xx."""
RELOAD_ALLOWANCE_S = 0.5
"""Reading the stats and reloading nginx, on top of one gate interval."""
CANARY_STEPS = ((0.0, 1), (2.0, 10), (4.0, 50), (6.0, 100))
"""(seconds after the deploy, v2's share in %)."""
RAMP_STEPS = ((0.0, 2), (1.5, 5), (3.0, 10), (4.5, 25), (6.0, 50))
SPIKE_WINDOW_S = 7.0
"""The cold-start p99 is taken over requests started in [deploy, deploy + this)."""
MIN_REQUESTS = 2000
MIN_GAP_FAILURES = 10
MIN_SPIKE_MS = 150.0
CANARY_SHARE_OF_BIG_BANG = 0.10
RAMP_P99_RATIO = 0.3


def api(v2: dict[str, object]) -> tuple[ServiceSpec, ...]:
    return (ServiceSpec("api", replicas=2, replica_args=({"release": "v1"}, v2)),)


LOAD = LoadSpec(
    locustfile="steady_users.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=DURATION_S,
    env={"LAB_THINK_MIN_S": str(THINK_S[0]), "LAB_THINK_MAX_S": str(THINK_S[1])},
)
# Weight 0 renders as `down`: v2 gets no request until a rollout gives it weight.
NGINX = NginxSpec(upstream=Upstream(keepalive=32, weights=(1, 0)))
COLD = {"release": "v2", "cold-start-s": COLD_START_S, "cold-start-ms": COLD_START_MS}


def plan(steps: tuple[tuple[float, int], ...], gate: bool) -> Plan:
    return Plan(DEPLOY_AT_S, steps, gate, GATE_INTERVAL_S, GATE_THRESHOLD)


BIG_BANG = Variant(
    name="big-bang",
    summary="stop v1, start v2, send it everything: 502s in the gap, then the bad "
    "release's 500s on all traffic",
    nginx=NGINX,
    services=api(BAD_RELEASE),
    load=LOAD,
    controller=replace(plan(((0.0, 100),), gate=False), big_bang=True),
    twin="blue-green",
)
BLUE_GREEN = replace(
    BIG_BANG,
    name="blue-green",
    summary="v2 ready beside v1, traffic flipped in one nginx reload, flipped back in one "
    f"reload when the gate sees > {GATE_THRESHOLD:.0%} errors",
    controller=plan(((0.0, 100),), gate=True),
    twin="big-bang",
)
CANARY = replace(
    BLUE_GREEN,
    name="canary",
    summary="v2 weighted 1 % -> 10 % -> 50 % -> 100 % through reloads; the gate rolls "
    f"back when > {GATE_THRESHOLD:.0%} of v2's answers in {GATE_INTERVAL_S:g} s are errors",
    controller=plan(CANARY_STEPS, gate=True),
)
COLD_FULL = replace(
    BIG_BANG,
    name="cold-start-full",
    summary=f"a good v2, cold for its first {COLD_START_S:g} s, gets half the traffic at once",
    services=api(COLD),
    controller=plan(((0.0, 50),), gate=False),
    twin="cold-start-ramped",
)
COLD_RAMPED = replace(
    COLD_FULL,
    name="cold-start-ramped",
    summary="the same cold v2, its share ramped 2 -> 5 -> 10 -> 25 -> 50 % over reloads "
    "while it warms up",
    controller=plan(RAMP_STEPS, gate=False),
    twin="cold-start-full",
)
VARIANTS = (BIG_BANG, BLUE_GREEN, CANARY, COLD_FULL, COLD_RAMPED)
