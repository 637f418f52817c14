"""retries' numbers: what the users asked for, what reached the api (its own count per
100 ms), and what the outage cost: the storm during it, the waves after it, and whether
the users are served again at the end.

`derive` returns them typed, as a `RetriesNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(RetriesNumbers)`) and its asdict()
view in `extra`."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.analysis.metrics import Request, VariantResult, is_success
from labs.engine.analysis.stats import downstream, items, mapping, number, service_stats, whole
from labs.engine.analysis.windows import Window, fault_events
from labs.engine.model.spec import DeriveContext
from labs.retries.scenario import BUCKET_S, FINAL_MARGIN_S, FINAL_S, PATH, STEADY_RATE

SPAN_SLACK_S = 0.005
"""A request's span is widened by this much on both sides when it is placed in the api's
100 ms buckets (clock rounding): a wider span can only make fewer buckets "alone"."""


@dataclass(frozen=True)
class Logical:
    """One user request, client retries included (loadtests/steady_users.py's logical.csv)."""

    start_s: float
    end_s: float
    client_attempts: int
    api_attempts: int
    status: int


@dataclass(frozen=True)
class FinalWindow:
    """The user requests started in the run's last seconds (see `final_window`)."""

    requests: int
    success_rate: float
    rate_share: float
    """Their rate as a share of the load's steady rate."""


@dataclass(frozen=True)
class OutageNumbers:
    """What the outage cost (all 0 when the run had none)."""

    attempts_per_failed_request: float = 0.0
    alone_at_api_s: float = 0.0
    alone_requests: int = 0
    failed_requests_in_outage: int = 0
    failed_after_outage: int = 0
    outage_api_attempts: int = 0
    outage_client_requests: int = 0
    outage_amplification: float = 0.0
    steady_bucket_mean: float = 0.0
    max_bucket_after_outage: int = 0
    recovery_s: float = 0.0
    outage_start_s: float = 0.0
    outage_end_s: float = 0.0


@dataclass(frozen=True)
class RetriesNumbers:
    """A variant's numbers (field order = results.json's `extra`)."""

    client_requests: int
    """User requests (first attempts)."""
    client_retries: int
    api_attempts: int
    """Every request that reached the api, by its own count."""
    amplification: float
    success_rate: float
    """Share of user requests whose last attempt succeeded."""
    gateway_attempts: int
    gateway_retries: int
    budget_denied: int
    gave_up_deadline: int
    attempts_accounted: float
    """The clients' X-Attempts tally against the api's own count (1.0 = every attempt is
    accounted for; a little less when requests were cut off at the end of the run)."""
    client_requests_100ms: tuple[int, ...]
    attempts_per_failed_request: float
    """api attempts per user request that failed during the outage, counted by the api
    where only those requests were in flight (`attempts_while_alone`; -1: never alone)."""
    alone_at_api_s: float
    alone_requests: int
    failed_requests_in_outage: int
    failed_after_outage: int
    """User requests that failed though they ended after the api was back."""
    outage_api_attempts: int
    outage_client_requests: int
    outage_amplification: float
    """api attempts per user request in flight during the outage."""
    steady_bucket_mean: float
    max_bucket_after_outage: int
    """The largest 100 ms bucket of api attempts after the outage: the wave."""
    recovery_s: float
    load_before_faults_s: float
    final_requests: int
    final_success_rate: float
    final_rate_share: float
    outage_start_s: float
    outage_end_s: float
    p50_ms: float
    p99_ms: float

    def fix_holds(self, max_failed_after: int, min_success: float, final_min_rate: float) -> bool:
        """Few requests failed after the api was back, nearly all succeeded, and the users
        are served again at the end (none is stuck in a call outlasting the run)."""
        return (
            self.failed_after_outage <= max_failed_after
            and self.success_rate >= min_success
            and self.final_success_rate >= min_success
            and self.final_rate_share >= final_min_rate
        )


# --- reading the run -------------------------------------------------------------------------


def outage_window(result: VariantResult) -> Window | None:
    """The outage, in seconds since the first request: from the fault step that set
    `outage_s` (the api arms it as the step lands) for that many seconds."""
    for event in fault_events(result):
        if event.settings.get("outage_s"):
            return Window(event.t_s, event.t_s + event.settings["outage_s"], event.label)
    return None


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


def api_arrivals(result: VariantResult) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The api's work requests per 100 ms: (bucket start in s since the first request, count)."""
    arrivals = mapping(service_stats(result, "api").get("arrivals"))
    if arrivals.get("start_epoch_s") is None:
        return (), ()
    start = number(arrivals["start_epoch_s"]) - result.origin_s
    width = number(arrivals.get("bucket_s"))
    counts = tuple(whole(c) for c in items(arrivals.get("counts")))
    return tuple(round(start + i * width, 3) for i in range(len(counts))), counts


def _ratio(part: float, total: float) -> float:
    return round(part / total, 3) if total else 0.0


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


def per_bucket(times: Sequence[float], width_s: float = BUCKET_S) -> tuple[int, ...]:
    """How many of `times` (s since the first request) fall in each bucket from 0."""
    counts = [0] * (int(max(times, default=-1) // width_s) + 1)
    for t in times:
        if t >= 0:
            counts[int(t // width_s)] += 1
    return tuple(counts)


@dataclass(frozen=True)
class AloneCount:
    """What some failed user requests cost each, counted by the api (`attempts_while_alone`)."""

    per_request: float
    """api attempts per request (-1: they were never alone at the api; 0: nothing failed)."""
    seconds: float
    """The 100 ms buckets the count comes from, in seconds."""
    requests: int
    """The failed requests it counts: those in flight only in those buckets."""


def attempts_while_alone(
    failed: Sequence[Logical],
    others: Sequence[Logical],
    xs: Sequence[float],
    counts: Sequence[int],
    width_s: float = BUCKET_S,
) -> AloneCount:
    """The api's own count of the attempts `failed` user requests cost, per request.

    The api counts arrivals per 100 ms, not per request, and every api attempt a user request
    causes arrives while that request is in flight (between its start and its end in
    logical.csv, both on the client's clock). So in a bucket in which only `failed` requests
    were in flight, every arrival is one of theirs. Of those buckets, keep the ones whose
    failed requests were in flight in kept buckets only: drop every request that crosses out
    of them, with its buckets, until none does. The kept buckets then hold every attempt of
    exactly the requests in them, so their sum over the number of those requests is what each
    cost, counted by the api. The failed requests come in rounds (their users failed together
    and think together), so what is kept is whole rounds; a round that shares a bucket with
    a user who was served (the first and last of an outage, often) is left out whole rather
    than counted in part. (It assumes every request in flight in those buckets is in
    logical.csv: true except for requests Locust's stop cuts off, which only a call lasting
    into the run's last second can be.)"""
    if not failed:
        return AloneCount(0.0, 0.0, 0)
    x0 = xs[0] if xs else 0.0

    def span(u: Logical) -> set[int]:
        first = math.floor((u.start_s - SPAN_SLACK_S - x0) / width_s)
        last = math.floor((u.end_s + SPAN_SLACK_S - x0) / width_s)
        return set(range(first, last + 1))

    spans = [span(u) for u in failed]
    kept = set().union(*spans) - set().union(*map(span, others))
    kept &= set(range(len(counts)))
    while crossing := [s for s in spans if s & kept and not s <= kept]:
        kept -= set().union(*crossing)
    inside = sum(s <= kept for s in spans)
    if not inside:
        return AloneCount(-1.0, 0.0, 0)
    return AloneCount(
        round(sum(counts[i] for i in kept) / inside, 2), round(len(kept) * width_s, 1), inside
    )


def final_window(users: Sequence[Logical], duration_s: float) -> FinalWindow:
    """Are the users served in the last seconds of the run? User requests started in the
    final window: how many, the share that succeeded, and their rate as a share of the
    steady rate. A user whose request is still waiting when Locust stops is never
    recorded: it shows here as a missing request, not as a failure."""
    end = duration_s - FINAL_MARGIN_S
    final = [u for u in users if end - FINAL_S <= u.start_s < end]
    return FinalWindow(
        requests=len(final),
        success_rate=_ratio(sum(is_success(u.status) for u in final), len(final)),
        rate_share=_ratio(len(final) / FINAL_S, STEADY_RATE),
    )


def outage_numbers(
    window: Window,
    arrivals: tuple[Sequence[float], Sequence[int]],
    requests: Sequence[Request],
    users: Sequence[Logical],
    origin_s: float,
) -> OutageNumbers:
    xs, counts = arrivals
    logical = [r for r in requests if r.name == PATH]
    inside = [i for i, x in enumerate(xs) if x >= window.start_s and x + 0.1 <= window.end_s + 1e-6]
    during = [
        r
        for r in logical
        if r.start_s - origin_s < window.end_s
        and r.start_s - origin_s + r.response_ms / 1000 > window.start_s
    ]
    before = [c for x, c in zip(xs, counts, strict=True) if 1.0 <= x < window.start_s - 0.5]
    last_end = max((r.start_s - origin_s + r.response_ms / 1000 for r in requests), default=0)
    after = [c for x, c in zip(xs, counts, strict=True) if window.end_s <= x < last_end]
    # Every layer gave up on these: each made all the attempts its policy allows.
    failed, others = [], []
    for u in users:
        met_outage = u.start_s < window.end_s and u.end_s > window.start_s
        (failed if met_outage and not is_success(u.status) else others).append(u)
    # Counted at the api, not from the gateway's X-Attempts header: what reached it.
    alone = attempts_while_alone(failed, others, xs, counts)
    outage_attempts = sum(counts[i] for i in inside)
    return OutageNumbers(
        attempts_per_failed_request=alone.per_request,
        alone_at_api_s=alone.seconds,
        alone_requests=alone.requests,
        failed_requests_in_outage=len(failed),
        # The api was back, and these still failed: the cost of coming back together.
        failed_after_outage=sum(not is_success(u.status) for u in users if u.end_s > window.end_s),
        outage_api_attempts=outage_attempts,
        outage_client_requests=len(during),
        outage_amplification=_ratio(outage_attempts, len(during)),
        steady_bucket_mean=round(sum(before) / len(before), 1) if before else 0.0,
        max_bucket_after_outage=max(after, default=0),
        recovery_s=recovery_time(requests, origin_s, window.end_s),
        outage_start_s=round(window.start_s, 3),
        outage_end_s=round(window.end_s, 3),
    )


def derive(ctx: DeriveContext) -> RetriesNumbers:
    result, requests = ctx.result, ctx.requests
    logical = [r for r in requests if r.name == PATH]
    client_retries = len(requests) - len(logical)
    failed_records = sum(not is_success(r.status) for r in requests)
    # Each client retry follows one failed attempt; a logical request failed if its last did.
    logical_failed = failed_records - client_retries
    users = read_logical(ctx.out_dir / "logical.csv", result.origin_s)
    arrivals = api_arrivals(result)
    api_attempts = sum(arrivals[1])
    gw = downstream(result, "api")
    window = outage_window(result)
    outage = (
        outage_numbers(window, arrivals, requests, users, result.origin_s)
        if window is not None and arrivals[1]
        else OutageNumbers()
    )
    events = fault_events(result)
    final = final_window(users, ctx.variant.load.duration_s)
    return RetriesNumbers(
        client_requests=len(logical),
        client_retries=client_retries,
        api_attempts=api_attempts,
        amplification=_ratio(api_attempts, len(logical)),
        success_rate=_ratio(len(logical) - logical_failed, len(logical)),
        gateway_attempts=whole(gw.get("attempts")),
        gateway_retries=whole(gw.get("retries")),
        budget_denied=whole(gw.get("retries_denied_by_budget")),
        gave_up_deadline=whole(gw.get("gave_up_deadline")),
        attempts_accounted=_ratio(sum(u.api_attempts for u in users), api_attempts),
        client_requests_100ms=per_bucket([r.start_s - result.origin_s for r in logical]),
        attempts_per_failed_request=outage.attempts_per_failed_request,
        alone_at_api_s=outage.alone_at_api_s,
        alone_requests=outage.alone_requests,
        failed_requests_in_outage=outage.failed_requests_in_outage,
        failed_after_outage=outage.failed_after_outage,
        outage_api_attempts=outage.outage_api_attempts,
        outage_client_requests=outage.outage_client_requests,
        outage_amplification=outage.outage_amplification,
        steady_bucket_mean=outage.steady_bucket_mean,
        max_bucket_after_outage=outage.max_bucket_after_outage,
        recovery_s=outage.recovery_s,
        load_before_faults_s=round(events[0].t_s, 3) if events else 0.0,
        final_requests=final.requests,
        final_success_rate=final.success_rate,
        final_rate_share=final.rate_share,
        outage_start_s=outage.outage_start_s,
        outage_end_s=outage.outage_end_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
    )
