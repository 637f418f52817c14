"""retries: backoff with and without jitter, retry storms across layers, retry budgets.

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
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import Request, VariantResult, is_success
from labs.engine.exercises import edits
from labs.engine.model.checks import extra, ratio_at_least, within
from labs.engine.model.spec import (
    Check,
    DeriveContext,
    Exercise,
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    Plot,
    ServiceSpec,
    Upstream,
    Variant,
)

PATH = "/work"
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


# --- measurements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float


def outage_window(result: VariantResult) -> Window | None:
    """The outage, in seconds since the first request: from the fault step that set
    `outage_s` (the api arms it as the step lands) for that many seconds."""
    for event in result.events:
        settings = event.get("settings")
        if isinstance(settings, Mapping) and settings.get("outage_s"):
            start = float(event["t_s"])  # type: ignore[arg-type]
            return Window(start, start + float(settings["outage_s"]))
    return None


@dataclass(frozen=True)
class Logical:
    """One user request, client retries included (loadtests/steady_users.py's logical.csv)."""

    start_s: float
    end_s: float
    client_attempts: int
    api_attempts: int
    status: int


def read_logical(path: Path, origin_s: float) -> list[Logical]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            Logical(
                float(row["start_s"]) - origin_s,
                float(row["end_s"]) - origin_s,
                int(row["client_attempts"]),
                int(row["api_attempts"]),
                int(row["status"]),
            )
            for row in csv.DictReader(handle)
        ]


def api_arrivals(result: VariantResult) -> tuple[list[float], list[int]]:
    """The api's work requests per 100 ms: (bucket start in s since the first request, count)."""
    replicas = result.services.get("api") or [{}]
    arrivals = replicas[0].get("arrivals") if isinstance(replicas[0], Mapping) else None
    if not isinstance(arrivals, Mapping) or arrivals.get("start_epoch_s") is None:
        return [], []
    start = float(arrivals["start_epoch_s"]) - result.origin_s
    width = float(arrivals["bucket_s"])
    counts = [int(c) for c in arrivals["counts"]]
    return [round(start + i * width, 3) for i in range(len(counts))], counts


def gateway_stats(result: VariantResult) -> Mapping[str, object]:
    replicas = result.services.get("gateway") or [{}]
    downstreams = replicas[0].get("downstreams", {}) if isinstance(replicas[0], Mapping) else {}
    return downstreams.get("api", {}) if isinstance(downstreams, Mapping) else {}


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else 0.0


def recovery_time(
    requests: Sequence[Request], origin_s: float, after_s: float, step_s: float = 1.0
) -> float:
    """Seconds from `after_s` until the success rate of requests *finishing* in each
    `step_s` window stays >= 99 % to the end of the run (-1: it never does)."""
    windows: dict[int, list[bool]] = {}
    for r in requests:
        end = r.start_s - origin_s + r.response_ms / 1000
        if end >= after_s:
            windows.setdefault(int((end - after_s) // step_s), []).append(is_success(r.status))
    if not windows:
        return -1.0
    last_bad = -1
    for index in sorted(windows):
        outcomes = windows[index]
        if sum(outcomes) / len(outcomes) < 0.99:
            last_bad = index
    if last_bad == max(windows):
        return -1.0
    return round((last_bad + 1) * step_s, 3)


OUTAGE_KEYS = (
    "attempts_per_failed_request",
    "alone_at_api_s",
    "failed_requests_in_outage",
    "failed_after_outage",
    "outage_api_attempts",
    "outage_client_requests",
    "outage_amplification",
    "steady_bucket_mean",
    "max_bucket_after_outage",
    "recovery_s",
)


def per_bucket(times: Sequence[float], width_s: float = BUCKET_S) -> list[int]:
    """How many of `times` (s since the first request) fall in each bucket from 0."""
    counts = [0] * (int(max(times, default=-1) // width_s) + 1)
    for t in times:
        if t >= 0:
            counts[int(t // width_s)] += 1
    return counts


SPAN_SLACK_S = 0.005
"""A request's span is widened by this much on both sides when it is placed in the api's
100 ms buckets (clock rounding): a wider span can only make fewer buckets "alone"."""


def attempts_while_alone(
    failed: Sequence[Logical],
    others: Sequence[Logical],
    xs: Sequence[float],
    counts: Sequence[int],
    width_s: float = BUCKET_S,
) -> tuple[float, float]:
    """The api's own count of the attempts `failed` user requests cost, per request, and the
    seconds it comes from.

    The api counts arrivals per 100 ms, not per request, and every api attempt a user request
    causes arrives while that request is in flight (between its start and its end in
    logical.csv, both on the client's clock). So in a bucket in which only `failed` requests
    were in flight, every arrival is one of theirs. Summing those buckets and dividing by
    len(failed) gives a lower bound on their mean cost (their attempts in buckets shared with
    `others` are left out), which is exact in the middle of an outage where nothing else is
    in flight: at least this many attempts per failed request reached the api. (It assumes
    every request in flight in those buckets is in logical.csv: true except for requests
    Locust's stop cuts off, which only a call lasting into the run's last second can be.)
    Returns (-1, 0) when no bucket had them alone, (0, 0) when nothing failed."""
    if not failed:
        return 0.0, 0.0
    if not counts:
        return -1.0, 0.0
    x0 = xs[0]

    def buckets(users: Sequence[Logical]) -> set[int]:
        spans: set[int] = set()
        for u in users:
            first = math.floor((u.start_s - SPAN_SLACK_S - x0) / width_s)
            last = math.floor((u.end_s + SPAN_SLACK_S - x0) / width_s)
            spans.update(range(first, last + 1))
        return spans

    alone = [i for i in buckets(failed) - buckets(others) if 0 <= i < len(counts)]
    if not alone:
        return -1.0, 0.0
    return round(sum(counts[i] for i in alone) / len(failed), 2), round(len(alone) * width_s, 1)


STEADY_RATE = USERS / (sum(THINK_S) / 2 + API_LATENCY_MS / 1000)
"""User requests started per second with nothing broken: 150 users, each one request per
1.1 s (1.0 s mean think time + 0.1 s answer) = 136/s; measured before the incident 136-139/s.
(The load's nominal rate, not the measured one: Locust's start-up can leave too short a
stretch before the incident to measure it on a busy machine.)"""


def final_window(users: Sequence[Logical], duration_s: float) -> dict[str, float]:
    """Are the users served in the last seconds of the run? User requests started in the
    final window: how many, the share that succeeded, and their rate as a share of the
    steady rate. A user whose request is still waiting when Locust stops is never
    recorded: it shows here as a missing request, not as a failure."""
    end = duration_s - FINAL_MARGIN_S
    final = [u for u in users if end - FINAL_S <= u.start_s < end]
    return {
        "final_requests": len(final),
        "final_success_rate": _ratio(sum(is_success(u.status) for u in final), len(final)),
        "final_rate_share": _ratio(len(final) / FINAL_S, STEADY_RATE),
    }


def derive(ctx: DeriveContext) -> dict[str, object]:
    result, requests = ctx.result, ctx.requests
    logical = [r for r in requests if r.name == PATH]
    client_retries = len(requests) - len(logical)
    failed_records = sum(not is_success(r.status) for r in requests)
    # Each client retry follows one failed attempt; a logical request failed if its last did.
    logical_failed = failed_records - client_retries
    users = read_logical(ctx.out_dir / "logical.csv", result.origin_s)
    xs, counts = api_arrivals(result)
    api_attempts = sum(counts)
    gw = gateway_stats(result)
    numbers: dict[str, object] = {
        "client_requests": len(logical),
        "client_retries": client_retries,
        "api_attempts": api_attempts,
        "amplification": _ratio(api_attempts, len(logical)),
        "success_rate": _ratio(len(logical) - logical_failed, len(logical)),
        "gateway_attempts": gw.get("attempts", 0),
        "gateway_retries": gw.get("retries", 0),
        "budget_denied": gw.get("retries_denied_by_budget", 0),
        "gave_up_deadline": gw.get("gave_up_deadline", 0),
        # The clients' X-Attempts tally against the api's own count (1.0 = every attempt
        # is accounted for; a little less when requests were cut off at the end of the run).
        "attempts_accounted": _ratio(sum(u.api_attempts for u in users), api_attempts),
        "client_requests_100ms": per_bucket([r.start_s - result.origin_s for r in logical]),
    }
    numbers.update(dict.fromkeys(OUTAGE_KEYS, 0))
    faults = [e for e in result.events if e.get("what") == "fault"]
    first_fault = float(faults[0]["t_s"]) if faults else 0.0  # type: ignore[arg-type]
    numbers["load_before_faults_s"] = round(first_fault, 3)
    numbers.update(final_window(users, ctx.variant.load.duration_s))
    window = outage_window(result)
    if window is None or not counts:
        return numbers
    inside = [i for i, x in enumerate(xs) if x >= window.start_s and x + 0.1 <= window.end_s + 1e-6]
    during = [
        r
        for r in logical
        if r.start_s - result.origin_s < window.end_s
        and r.start_s - result.origin_s + r.response_ms / 1000 > window.start_s
    ]
    before = [c for x, c in zip(xs, counts, strict=True) if 1.0 <= x < window.start_s - 0.5]
    last_end = max(
        (r.start_s - result.origin_s + r.response_ms / 1000 for r in requests), default=0
    )
    after = [c for x, c in zip(xs, counts, strict=True) if window.end_s <= x < last_end]
    # Every layer gave up on these: each made all the attempts its policy allows.
    failed, others = [], []
    for u in users:
        met_outage = u.start_s < window.end_s and u.end_s > window.start_s
        (failed if met_outage and not is_success(u.status) else others).append(u)
    # Counted at the api, not from the gateway's X-Attempts header: what reached it.
    per_failed, alone_s = attempts_while_alone(failed, others, xs, counts)
    numbers.update(
        {
            "attempts_per_failed_request": per_failed,
            "alone_at_api_s": alone_s,
            "failed_requests_in_outage": len(failed),
            # The api was back, and these still failed: the cost of coming back together.
            "failed_after_outage": sum(
                not is_success(u.status) for u in users if u.end_s > window.end_s
            ),
            "outage_start_s": round(window.start_s, 3),
            "outage_end_s": round(window.end_s, 3),
            "outage_api_attempts": sum(counts[i] for i in inside),
            "outage_client_requests": len(during),
            "outage_amplification": _ratio(sum(counts[i] for i in inside), len(during)),
            "steady_bucket_mean": round(sum(before) / len(before), 1) if before else 0.0,
            "max_bucket_after_outage": max(after, default=0),
            "recovery_s": recovery_time(requests, result.origin_s, window.end_s),
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
        }
    )
    return numbers


# --- checks ----------------------------------------------------------------------------------


def _extra(results: Mapping[str, VariantResult], variant: str, key: str) -> float:
    value = results[variant].extra.get(key)
    return float(value) if isinstance(value, int | float) else float("nan")


def jitter_keeps_requests(better: str, worse: str, share: float) -> Check:
    """`better` succeeds at least as often as `worse`, and loses at most `share` of the
    requests `worse` loses after the outage (the ones the synchronized wave costs)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        ok_b, ok_w = _extra(results, better, "success_rate"), _extra(results, worse, "success_rate")
        lost_b = _extra(results, better, "failed_after_outage")
        lost_w = _extra(results, worse, "failed_after_outage")
        passed = ok_b >= ok_w and lost_w > 0 and lost_b <= share * lost_w
        return passed, (
            f"client success rate: {better} {ok_b:.3f} vs {worse} {ok_w:.3f}, expected {better} "
            f">= {worse}; requests failed after the api was back: {better} {lost_b:g} vs "
            f"{worse} {lost_w:g}, expected {better} <= {share:g} x {worse} = {share * lost_w:g}"
        )

    name = f"{better}_succeeds_where_{worse}_fails".replace("-", "_")
    return Check(name, evaluate, (better, worse))


def layers_multiply(variant: str, low: float, high: float) -> Check:
    """low <= the api attempts per user request that failed during the outage <= high,
    counted by the api itself (`attempts_while_alone`: at least that many reached it)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        a = _extra(results, variant, "attempts_per_failed_request")
        alone = _extra(results, variant, "alone_at_api_s")
        failed = _extra(results, variant, "failed_requests_in_outage")
        return low <= a <= high, (
            f"api attempts per user request that failed during the outage, counted by the api "
            f"in the {alone:g} s in which only those {failed:g} requests were in flight there "
            f"(so at least this many; -1: never alone): {variant} {a:g}, expected {low:g} .. "
            f"{high:g} ({CLIENT_ATTEMPTS} client x {LAYER_GATEWAY_ATTEMPTS} gateway attempts = "
            f"{CLIENT_ATTEMPTS * LAYER_GATEWAY_ATTEMPTS}; 0.8 x = {low:g})"
        )

    return Check("layers_multiply_attempts", evaluate, (variant,))


def load_ran_first(min_s: float) -> Check:
    """In every variant the users were running `min_s` before the first fault: the fault
    schedule counts from Locust's start, and a machine busy enough to delay Locust's
    start-up by seconds would otherwise measure a different experiment."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        lead = {n: _extra(results, n, "load_before_faults_s") for n in results}
        short = {n: t for n, t in lead.items() if not t >= min_s}
        shown = ", ".join(f"{n} {t:g}" for n, t in short.items()) or f"min {min(lead.values()):g}"
        return not short, (
            f"seconds of steady load before the stall: {shown}, expected >= {min_s:g} "
            "in every variant (if not: Locust started late on a busy machine; run again)"
        )

    return Check(
        "load_ran_before_the_incident",
        evaluate,
        (),  # whichever variants ran
        not_applicable="a precondition of the experiment (the load ran before the outage), "
        "not a fix",
    )


LAYERS_PRODUCT = CLIENT_ATTEMPTS * LAYER_GATEWAY_ATTEMPTS
CHECKS = (
    load_ran_first(1.5),
    ratio_at_least(
        "immediate_amplifies_3x_full_jitter",
        "immediate",
        "full-jitter",
        extra("outage_amplification"),
        3.0,
        "api attempts per client request during the outage",
    ),
    ratio_at_least(
        "exponential_waves_2x_full_jitter",
        "exponential",
        "full-jitter",
        extra("max_bucket_after_outage"),
        2.0,
        "largest 100 ms bucket of api attempts after the outage",
    ),
    jitter_keeps_requests("full-jitter", "exponential", 0.2),
    layers_multiply("layers", 0.8 * LAYERS_PRODUCT, LAYERS_PRODUCT),
    within(
        "budget_caps_amplification",
        "budget",
        extra("outage_amplification"),
        0.0,
        1.3,
        "api attempts per client request during the outage",
    ),
)


# --- plots -----------------------------------------------------------------------------------


def arrivals_series(result: VariantResult) -> Mapping[str, tuple[list[float], list[int]]]:
    """The api's attempts per 100 ms next to the users' requests per 100 ms: the gap
    between the two lines is the retries."""
    xs, counts = api_arrivals(result)
    users = result.extra.get("client_requests_100ms")
    series = {"api attempts": (xs, counts)}
    if isinstance(users, list):
        series["user requests"] = ([round(i * BUCKET_S, 3) for i in range(len(users))], users)
    return series


def client_series(result: VariantResult) -> Mapping[str, tuple[list[float], list[int]]]:
    xs = [b.t_s for b in result.series]
    ok = [sum(n for code, n in b.status.items() if 200 <= int(code) < 400) for b in result.series]
    failed = [b.requests - good for b, good in zip(result.series, ok, strict=True)]
    return {"succeeded": (xs, ok), "failed": (xs, failed)}


# --- exercise --------------------------------------------------------------------------------

FIX_MAX_FAILED_AFTER = 10
FIX_MIN_SUCCESS = 0.99
FINAL_MIN_RATE = 0.5
"""In the last seconds the users must make at least half as many requests per second as
the load's normal rate (STEADY_RATE): users stuck in calls that outlast the run make none,
and are never recorded as failures. Measured here (5 runs of full-jitter, 8 of
exponential, 3-4 of the others): full-jitter 78-86 % (some calls are still in their last
jittered wait), decorrelated-jitter 55 %, the other variants 89-105 %; waits of 9 s
(exponential, base = cap = 9) 0 %."""


def settings(variant: Variant) -> str:
    """The exercise's editable file: the gateway's retry policy."""
    args = variant.services[-1].args
    budget = args.get("budget") == "on"
    return f"""\
# retries exercise. The api stalls, crashes for {OUTAGE_S:g} s and comes back cold (it can
# take {COLD_CAPACITY} requests at once). Users keep seeing failures after it is back. The
# gateway retries its calls to the api with the policy below. Change the values, then
# run `lab grade retries`.

[gateway.retry]
# One of: {", ".join(STRATEGIES)}.
# exponential waits min(cap_s, base_s * 2^n); full-jitter waits uniform(0, that);
# decorrelated-jitter waits min(cap_s, uniform(base_s, 3 * previous wait)).
strategy = "{args["retry-strategy"]}"
# Attempts per call, the first included (1 = never retry).
max_attempts = {args["retry-max-attempts"]}
# Seconds, each at most {LONGEST_WAIT_S:g}: a call that waits longer ends after the run.
base_s = {args["retry-base"]}
cap_s = {args["retry-cap"]}
# The whole call, retries included, gives up after this long.
deadline_s = {args["retry-deadline"]}

[gateway.retry_budget]
# Retries allowed as a share of the requests of the last 10 s (false = no budget).
enabled = {"true" if budget else "false"}
ratio = {args.get("budget-ratio", 0.1)}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    retry = {
        "retry-max-attempts": edits.whole(data, "gateway.retry.max_attempts", 1, 100),
        # Waits the run cannot show are refused: their requests would end after Locust
        # stops, never be recorded, and so never count as failures.
        **{
            arg: edits.number(data, f"gateway.retry.{key}", 0, LONGEST_WAIT_S, "seconds")
            for arg, key in (
                ("retry-base", "base_s"),
                ("retry-cap", "cap_s"),
                ("retry-deadline", "deadline_s"),
            )
        },
    }
    strategy = edits.choice(data, "gateway.retry.strategy", STRATEGIES)
    if edits.boolean(data, "gateway.retry_budget.enabled"):
        ratio = edits.number(data, "gateway.retry_budget.ratio", 0, 10, "retries per request")
        retry.update({"budget": "on", "budget-ratio": ratio, "budget-min-per-s": 1})
    return replace(base, services=(API, gateway(strategy, **retry)))


def retries_removed(variant: Variant) -> str | None:
    args = variant.services[-1].args
    if args["retry-strategy"] == "none" or args["retry-max-attempts"] == 1:
        return (
            "turning the gateway's retries off removes the storm and the waves, and every "
            f"request that meets the {OUTAGE_S:g} s outage, or a single dropped connection, "
            "fails. Keep the retries; change when they happen."
        )
    return None


def after_the_outage(result: VariantResult) -> str:
    e = result.extra
    return (
        f"{e.get('failed_after_outage', '?')} requests failed after the api was back "
        f"(client success rate {float(e.get('success_rate', 0)):.1%}, largest 100 ms wave of "  # type: ignore[arg-type]
        f"api attempts {e.get('max_bucket_after_outage', '?')} vs {COLD_CAPACITY} it can take); "
        + (
            f"in the last {FINAL_S:g} s {e['final_requests']} requests, "
            f"{result.number('final_success_rate'):.1%} succeeded, at "
            f"{result.number('final_rate_share'):.0%} of the rate before the incident"
            if e.get("final_requests")
            else f"no request at all in the last {FINAL_S:g} s: the users are stuck in calls "
            "that end after the run"
        )
    )


def holds(result: VariantResult) -> bool:
    return (
        result.number("failed_after_outage") <= FIX_MAX_FAILED_AFTER
        and result.number("success_rate") >= FIX_MIN_SUCCESS
        # The users are served again at the end: none is stuck in a call outlasting the run.
        and result.number("final_success_rate") >= FIX_MIN_SUCCESS
        and result.number("final_rate_share") >= FINAL_MIN_RATE
    )


EXERCISE = Exercise(
    task=(
        f"The api crashes for {OUTAGE_S:g} s and comes back, and users keep seeing failures "
        "after it is back: the gateway's retries arrive together and knock the cold api "
        "over again. Look at when the gateway's retries happen."
    ),
    broken="exponential",
    fixed="full-jitter",
    settings=settings,
    apply=apply_settings,
    measure=after_the_outage,
    holds=holds,
    expected=f"<= {FIX_MAX_FAILED_AFTER} requests failed after the api was back and a client "
    f"success rate >= {FIX_MIN_SUCCESS:.0%}; in the last {FINAL_S:g} s of the run >= "
    f"{FIX_MIN_SUCCESS:.0%} of requests succeed, at >= {FINAL_MIN_RATE:.0%} of the rate before "
    "the incident",
    advice="every client that failed at the same instant waits the same backoff, so the "
    "retries come back as one wave",
    guards=(retries_removed,),
    hints=(
        "Plot the api's attempts per 100 ms (report.html): after the outage they come in "
        "spikes, not a steady stream. Why would hundreds of clients retry at the same moment?",
        "Exponential backoff gives every client that failed together the same sequence of "
        "waits. What would make each client's wait different?",
        'Set strategy = "full-jitter": each wait is uniform(0, min(cap, base * 2^n)), which '
        "spreads the same retries over the whole window.",
    ),
    grade_in_parallel=False,  # 150 users each: one at a time on 2 cores
)

LAB = Lab(
    name="retries",
    title="Retries: backoff, jitter, retry storms and retry budgets",
    question="Why do retries turn a 5-second blip into a retry storm, and what stops it?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=CHECKS,
    key_metrics=(
        "extra.client_requests",
        "extra.amplification",
        "extra.outage_amplification",
        "extra.attempts_per_failed_request",
        "extra.max_bucket_after_outage",
        "extra.success_rate",
        "extra.recovery_s",
        "p99_ms",
    ),
    derive=derive,
    plots=(
        Plot("api attempts per 100 ms", "per 100 ms", arrivals_series, kind="step"),
        Plot("client requests per second", "requests / s", client_series, kind="line"),
    ),
    exercise=EXERCISE,
)
