"""overload's scenario: an overload that outlives its trigger (a metastable failure),
its hysteresis, and the fixes that let the system recover.

open-loop clients (Locust) -> nginx -> api (a pool of WORKERS x WORK_MS, a queue)

New requests arrive at RATE per second whatever the api does (open loop). Each attempt
times out after TIMEOUT_S and is retried up to ATTEMPTS attempts in all. The api's
capacity is WORKERS / WORK_MS = 100 requests per second; RATE uses half of it. The
trigger: for a few seconds every request's work takes FACTOR times longer, then it is
normal again. Under `broken` (FIFO queue, no limit, plain retries) the queue grows
past the clients' timeout during the trigger; from then on every answer comes too
late, every request is sent ATTEMPTS times, the api is busy with work nobody waits
for, and goodput stays at zero long after the trigger is gone. The same system
recovers from a shorter trigger, or at a lower rate (the hysteresis), and, from the
same trigger at the same rate, with a retry budget, adaptive client throttling, a
bounded queue that sheds the excess at once, or (the one variant with a gateway between
nginx and the api) an adaptive concurrency limit that refuses calls over it at once.

The constants and the variants; it imports only the engine.
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

WORKERS, WORK_MS = 10, 100.0
CAPACITY_PER_S = WORKERS * 1000 / WORK_MS
RATE, LOW_RATE = 50.0, 20.0
"""New requests per second: half the capacity, and a rate the api can serve even while
the trigger lasts (capacity / FACTOR = 25 per second)."""
TIMEOUT_S, ATTEMPTS = 1.0, 4
FACTOR = 4.0
"""The trigger: every request's work x 4 (capacity 100/s -> 25/s)."""
TRIGGER_AT_S = 7.0
"""Seconds after Locust starts (it sends its first request 1-3 s later)."""
LONG_S, SHORT_S = 4.0, 1.0
"""How long the trigger lasts: `broken` and the fixes, and `short-trigger`."""
MAX_TRIGGER_S = 6.0
"""The longest trigger that leaves a measured "after" before the arrivals end."""
ARRIVALS_S = 20
"""Seconds of new requests; then the requests in flight finish and the load stops."""
DURATION_S = 30
"""Locust's limit; the load stops by itself when its arrivals are done and drained."""
QUEUE_LIMIT = 40
"""The shedding fix: at most 40 requests wait (0.4 s of work at full capacity), the next
one gets 503 at once."""
THROTTLE_K, THROTTLE_WINDOW_S = 2.0, 1.0
LIMIT_INITIAL, LIMIT_MAX = 20, 100
LIMIT_TARGET_MS = 500.0
"""The adaptive limit's latency target: half the clients' timeout. Under the trigger a
request alone takes 400 ms, so the limit settles where the queue adds no more than
about 100 ms (about 12 calls at 25 per second)."""
LIMIT_BACKOFF = 0.9
GATEWAY_DEADLINE_S = 2.0
"""The gateway gives up on the api after this long (a 504, which shrinks the limit)."""

# What the checks (and the exercise's grade) hold the numbers to.
RECOVERY_S = 5.0
"""Goodput is judged from this long after the trigger ends to the end of the arrivals."""
STAYS_DOWN = 0.2
"""broken: goodput after <= 20 % of its goodput before the trigger ..."""
BUSY = 0.8
"""... while the api completes >= 80 % of its capacity (busy with the wrong requests)."""
RECOVERED = 0.9
"""short-trigger, low-load and every fix: goodput after >= 90 % of before."""
THROTTLE_SLACK = 0.25
"""client-throttling: attempts reaching the api from the trigger's start to RECOVERY_S
after its end <= THROTTLE_K x (1 + THROTTLE_SLACK) x the attempts it accepted. The
throttle's 1 s window lags the change, so during the trigger alone the ratio is higher
(3.35 measured); over the longer window it was 1.5."""
RATE_TOLERANCE = 0.1
"""The offered rate (first attempts really sent, during and after the trigger) is
within 10 % of the clients' own schedule in that window: the load did not slow down
with the server."""
LEAD_S = 4.0
"""Seconds of measured load every variant needs before the trigger."""
MIN_BEFORE = 100
"""Requests the "before" goodput needs to mean something."""


POOL_DEFAULTS: dict[str, object] = {
    "workers": WORKERS,
    "work-ms": WORK_MS,
    "queue": "fifo",
    "queue-limit": 0,
    "max-queue-ms": 0,
    "shed-expired": "off",
}
"""Every worker-pool option (services/api/workpool.py), so each variant's command line
says everything; the variants differ by what they pass to `api`."""
SHUTDOWN_S = 0.5
"""The stuck api still holds a thousand queued requests when the load ends: its stop
does not wait for them (aiohttp's default would, for seconds)."""


def api(**pool: object) -> tuple[ServiceSpec, ...]:
    args = {**POOL_DEFAULTS, **pool, "shutdown-timeout": SHUTDOWN_S}
    return (ServiceSpec("api", args=args),)


def gateway() -> ServiceSpec:
    """nginx -> gateway -> api: the gateway's AIMD limit (services/gateway/adaptive.py)
    admits calls to the api, the rest get 503 at once; it neither retries nor limits
    anything else."""
    args: dict[str, object] = {
        "retry-strategy": "none",
        "retry-deadline": GATEWAY_DEADLINE_S,
        "attempt-timeout": 0,
        "max-connections": LIMIT_MAX,
        "adaptive-limit": "on",
        "adaptive-initial": LIMIT_INITIAL,
        "adaptive-min": 1,
        "adaptive-max": LIMIT_MAX,
        "adaptive-target-ms": LIMIT_TARGET_MS,
        "adaptive-backoff": LIMIT_BACKOFF,
        "shutdown-timeout": SHUTDOWN_S,
    }
    return ServiceSpec(
        "gateway", module="services.gateway", args=args, depends_on={"api-url": "api"}
    )


def load(rate: float = RATE, attempts: int = ATTEMPTS, **client: str) -> LoadSpec:
    env = {
        "LAB_RATE": f"{rate:g}",
        "LAB_ARRIVALS_S": f"{ARRIVALS_S:g}",
        "LAB_CLIENT_TIMEOUT_S": f"{TIMEOUT_S:g}",
        "LAB_CLIENT_ATTEMPTS": str(attempts),
        "LAB_RETRY_BUDGET": "off",
        "LAB_THROTTLE": "off",
        "LAB_THROTTLE_K": f"{THROTTLE_K:g}",
        "LAB_THROTTLE_WINDOW_S": f"{THROTTLE_WINDOW_S:g}",
        "LAB_SEED": "1",
    }
    return LoadSpec("open_loop.py", users=1, spawn_rate=1, duration_s=DURATION_S, env=env | client)


def trigger(seconds: float, factor: float = FACTOR) -> tuple[FaultStep, ...]:
    return (
        FaultStep(TRIGGER_AT_S, "api", {"work_factor": factor}, label=f"work x{factor:g}"),
        FaultStep(TRIGGER_AT_S + seconds, "api", {"work_factor": 0}),
    )


BROKEN = Variant(
    name="broken",
    summary=f"FIFO queue, no limit; {ATTEMPTS} attempts of {TIMEOUT_S:g} s; work x{FACTOR:g} "
    f"for {LONG_S:g} s at {RATE:g} requests/s",
    nginx=NginxSpec(upstream=Upstream(keepalive=64)),
    services=api(),
    load=load(),
    faults=trigger(LONG_S),
    twin="retry-budget",
)
SHORT_TRIGGER = replace(
    BROKEN,
    name="short-trigger",
    summary=f"the same system, the trigger lasts {SHORT_S:g} s",
    faults=trigger(SHORT_S),
    twin="broken",
)
LOW_LOAD = replace(
    BROKEN,
    name="low-load",
    summary=f"the same system and trigger at {LOW_RATE:g} requests/s",
    load=load(LOW_RATE),
    twin="broken",
)
RETRY_BUDGET = replace(
    BROKEN,
    name="retry-budget",
    summary="a retry budget: retries only while > 5 of 10 tokens are left "
    "(a failure takes 1, a success gives 0.1)",
    load=load(LAB_RETRY_BUDGET="on"),
    twin="broken",
)
THROTTLING = replace(
    BROKEN,
    name="client-throttling",
    summary=f"adaptive throttling: reject locally with p = (requests - {THROTTLE_K:g} x "
    f"accepts) / (requests + 1) over {THROTTLE_WINDOW_S:g} s",
    load=load(LAB_THROTTLE="on"),
    twin="broken",
)
SHEDDING = replace(
    BROKEN,
    name="bounded-queue",
    summary=f"the api sheds: at most {QUEUE_LIMIT} requests wait, the next gets 503 at once",
    services=api(**{"queue-limit": QUEUE_LIMIT}),
    twin="broken",
)
ADAPTIVE = replace(
    BROKEN,
    name="adaptive-limit",
    summary=f"a gateway in front of the api with an adaptive concurrency limit (AIMD: +1 per "
    f"answer within {LIMIT_TARGET_MS:g} ms, x{LIMIT_BACKOFF:g} per slower or failed one); "
    "calls over it get 503 at once",
    nginx=NginxSpec(upstream=Upstream(keepalive=64), backend="gateway"),
    services=(*api(), gateway()),
    twin="broken",
)
VARIANTS = (BROKEN, SHORT_TRIGGER, LOW_LOAD, RETRY_BUDGET, THROTTLING, SHEDDING, ADAPTIVE)
