"""retries' scenario: backoff with and without jitter, retry storms across layers, retry
budgets.

clients (Locust) -> nginx -> gateway -> api. The gateway retries its calls to the api
with the variant's policy. Mid-run the api stalls for a moment (every client ends up
waiting on it), crashes for 5 s (every request in flight fails in the same instant, then
503 for everyone) and comes back cold, able to serve only 40 requests at once. The lab
counts every attempt that reaches the api, per 100 ms, and compares the strategies:

- immediate retries multiply the load on a backend that is already down;
- exponential backoff without jitter keeps the clients in lockstep: the attempts arrive
  in waves, and the wave that meets the recovered api overruns it;
- full jitter spreads the same retries out; a retry budget caps them outright;
- retries at two layers multiply: 4 client attempts x 3 gateway attempts = 12 per request.

The constants, the variants and the checks' thresholds; it imports only the engine.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import (
    FaultStep,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)

PATH = "/work"
"""The users' request (a client retry is named "/work (client retry)")."""
BUCKET_S = 0.1
USERS = 150
THINK_S = (0.8, 1.2)
API_LATENCY_MS = 100
"""Every api request is 100 ms of work: ~14 requests in flight at the steady load."""

STALL_AT_S, STALL_MS = 7.0, 1600
"""The api stalls: every user's next request waits, so all of them are in flight...
(7 s: fault times count from Locust's start, which takes 1-6 s on a busy machine)"""
CRASH_AT_S, OUTAGE_S = 8.4, 5.0
"""...when it crashes: they all fail at once, then every request gets 503 for 5 s."""
COLD_CAPACITY = 40
"""It comes back cold: above 40 concurrent requests it answers 503 (steady load needs ~14)."""

MAX_ATTEMPTS = 20
BASE_S, CAP_S, DEADLINE_S = 2.0, 4.0, 10.0
CLIENT_ATTEMPTS = 4
LAYER_GATEWAY_ATTEMPTS = 3
LAYERS_PRODUCT = CLIENT_ATTEMPTS * LAYER_GATEWAY_ATTEMPTS

FAULTS = (
    FaultStep(STALL_AT_S, "api", {"latency_ms": STALL_MS}, label="stall"),
    FaultStep(
        CRASH_AT_S, "api", {"outage_s": OUTAGE_S, "latency_ms": API_LATENCY_MS}, label="outage"
    ),
    FaultStep(CRASH_AT_S + OUTAGE_S, "api", {"max_concurrent": COLD_CAPACITY}, label="cold"),
)

STRATEGIES = (
    "none",
    "immediate",
    "exponential",
    "full-jitter",
    "equal-jitter",
    "decorrelated-jitter",
)
"""The gateway's --retry-strategy choices (a test keeps them equal to the gateway's)."""


def gateway(strategy: str, **options: object) -> ServiceSpec:
    args: dict[str, object] = {
        "retry-strategy": strategy,
        "retry-max-attempts": MAX_ATTEMPTS,
        "retry-base": BASE_S,
        "retry-cap": CAP_S,
        "retry-deadline": DEADLINE_S,
        # The api's Retry-After names the same instant for every client; honouring it
        # would line them all up whatever the backoff (see the guide).
        "retry-after": "off",
        "max-connections": 0,
        "seed": 7,
    }
    args.update(options)
    return ServiceSpec(
        "gateway", module="services.gateway", args=args, depends_on={"api-url": "api"}
    )


API = ServiceSpec("api", args={"latency-ms": API_LATENCY_MS, "seed": 1})
LOAD = LoadSpec(
    locustfile="steady_users.py",
    users=USERS,
    spawn_rate=USERS,
    duration_s=18,
    env={"LAB_THINK_MIN_S": str(THINK_S[0]), "LAB_THINK_MAX_S": str(THINK_S[1])},
)
LONGEST_WAIT_S = LOAD.duration_s - STALL_AT_S - 1.0
"""The longest deadline (and so backoff) the run can show: a call that starts when the api
stalls and uses all of it still ends 1 s before Locust stops. A call that ends after that
is never recorded: its user silently stops making requests."""
assert DEADLINE_S <= LONGEST_WAIT_S
FINAL_S, FINAL_MARGIN_S = 3.0, 0.5
"""The last seconds of the run, where the users must be served again: requests started
in the 3 s before the last 0.5 s (a request still in flight when Locust stops is lost)."""
STEADY_RATE = USERS / (sum(THINK_S) / 2 + API_LATENCY_MS / 1000)
"""User requests started per second with nothing broken: 150 users, each one request per
1.1 s (1.0 s mean think time + 0.1 s answer) = 136/s; measured before the incident 136-139/s.
(The load's nominal rate, not the measured one: Locust's start-up can leave too short a
stretch before the incident to measure it on a busy machine.)"""

# What the checks (and the exercise's grade) hold the numbers to.
LEAD_S = 1.5
"""Seconds of steady load every variant needs before the stall."""
STORM_FACTOR = 3.0
"""immediate's api attempts per client request during the outage >= this x full jitter's."""
WAVE_FACTOR = 2.0
"""exponential's largest 100 ms wave after the outage >= this x full jitter's."""
LOST_SHARE = 0.2
"""full jitter loses at most this share of the requests exponential loses after the outage."""
LAYERS_LOW = 0.8 * LAYERS_PRODUCT
"""layers: at least this many api attempts per failed user request (the api's own count
is a lower bound on the 12 they cost)."""
BUDGET_MAX_AMPLIFICATION = 1.3
"""budget: api attempts per client request during the outage stay at most this."""
FIX_MAX_FAILED_AFTER = 10
FIX_MIN_SUCCESS = 0.99
FINAL_MIN_RATE = 0.5
"""In the last seconds the users must make at least half as many requests per second as
the load's normal rate (STEADY_RATE): users stuck in calls that outlast the run make none,
and are never recorded as failures. Measured here (5 runs of full-jitter, 8 of
exponential, 3-4 of the others): full-jitter 78-86 % (some calls are still in their last
jittered wait), decorrelated-jitter 55 %, the other variants 89-105 %; waits of 9 s
(exponential, base = cap = 9) 0 %."""

NGINX = NginxSpec(upstream=Upstream(keepalive=32), backend="gateway")

NO_RETRY = Variant(
    name="no-retry",
    summary="the gateway makes one attempt; every request during the outage fails",
    nginx=NGINX,
    services=(API, gateway("none")),
    load=LOAD,
    faults=FAULTS,
    explore="the baseline: what the outage costs with no retry at all; the checks compare "
    "what each retry policy adds on top of it",
)
IMMEDIATE = replace(
    NO_RETRY,
    name="immediate",
    summary=f"up to {MAX_ATTEMPTS} attempts, no wait between them",
    services=(API, gateway("immediate")),
    explore="",
    twin="full-jitter",
)
EXPONENTIAL = replace(
    NO_RETRY,
    name="exponential",
    summary=f"waits min({CAP_S:g}, {BASE_S:g} * 2^n) s, no jitter; {DEADLINE_S:g} s deadline",
    services=(API, gateway("exponential")),
    explore="",
    twin="full-jitter",
)
FULL_JITTER = replace(
    NO_RETRY,
    name="full-jitter",
    summary=f"waits uniform(0, min({CAP_S:g}, {BASE_S:g} * 2^n)) s; {DEADLINE_S:g} s deadline",
    services=(API, gateway("full-jitter")),
    explore="",
    twin="exponential",
)
DECORRELATED = replace(
    NO_RETRY,
    name="decorrelated-jitter",
    summary=f"waits min({CAP_S:g}, uniform({BASE_S:g}, 3 * previous wait)) s",
    services=(API, gateway("decorrelated-jitter")),
    explore="another jitter (AWS's decorrelated): compare its waves and success rate with "
    "full-jitter's by hand; the checks judge full jitter",
)
BUDGET = replace(
    NO_RETRY,
    name="budget",
    summary="full jitter + a retry budget: retries <= 10 % of the last 10 s of requests",
    services=(
        API,
        gateway("full-jitter", **{"budget": "on", "budget-ratio": 0.1, "budget-min-per-s": 1}),
    ),
    explore="",
    twin="full-jitter",
)
LAYERS = replace(
    NO_RETRY,
    name="layers",
    summary=(
        f"clients retry too: {CLIENT_ATTEMPTS} client attempts x "
        f"{LAYER_GATEWAY_ATTEMPTS} gateway attempts, short backoffs at both layers"
    ),
    services=(
        API,
        gateway(
            "exponential",
            **{"retry-max-attempts": LAYER_GATEWAY_ATTEMPTS, "retry-base": 0.02, "retry-cap": 0.1},
        ),
    ),
    load=replace(
        LOAD,
        env={
            **LOAD.env,
            "LAB_CLIENT_ATTEMPTS": str(CLIENT_ATTEMPTS),
            "LAB_CLIENT_BACKOFF_S": "0.05",
        },
    ),
    explore="",
    twin="exponential",
)
VARIANTS = (NO_RETRY, IMMEDIATE, EXPONENTIAL, FULL_JITTER, DECORRELATED, BUDGET, LAYERS)
