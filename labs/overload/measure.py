"""overload's numbers: per phase (before, during and after the trigger) the rate of new
requests, the attempts the clients sent, the api's completions and the goodput, from
the clients' records (logical.csv, loadtests/open_loop.py) and the api's own counts
(/admin/stats "workpool"); the send lag that proves the load is open-loop; and the
per-second series the report plots.

Goodput: requests that got a good answer (an attempt answered 2xx before its timeout),
per second, by the time the answer arrived. Throughput: requests the api finished, on
time or not. "after" starts RECOVERY_S after the trigger ends and lasts to the end of
the arrivals."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult, percentile
from labs.engine.analysis.stats import (
    bucket_counts,
    items,
    mapping,
    number,
    service_stats,
    whole,
)
from labs.engine.analysis.windows import Window, fault_windows
from labs.engine.load.driver import CLIENT_RETRY_SUFFIX
from labs.engine.model.spec import DeriveContext
from labs.overload.scenario import RECOVERY_S

LOGICAL_FILE = "logical.csv"
WARMUP_S = 1.0
"""The first second of load is left out of "before": connections are still opening."""
NAN = math.nan

Line = tuple[tuple[float, ...], tuple[float, ...]]
"""A plotted line as stored: (seconds since the first request, values)."""


@dataclass(frozen=True)
class Logical:
    """One request as its client saw it, in seconds since the run's first request."""

    intended_s: float
    sent_s: float
    """When its first attempt really left (NaN: never sent)."""
    end_s: float
    attempts: int
    status: int
    outcome: str
    """ok | failed | throttled | dropped | pending."""


@dataclass(frozen=True)
class Phase:
    """Rates per second over one window of the run."""

    start_s: float
    end_s: float
    arrivals_per_s: float
    """New requests (by intended send time)."""
    attempts_per_s: float
    """Attempts the clients sent, retries included: the load the api was offered."""
    throughput_per_s: float
    """Requests the api finished, whether anyone still waited for the answer or not."""
    goodput_per_s: float
    goodput_share: float
    """goodput / new requests: the share of the demand served in time."""
    latency_p50_ms: float
    """Of the requests that started in the window, from their intended send time to the
    end (good or not)."""


@dataclass(frozen=True)
class LimitNumbers:
    """The gateway's adaptive concurrency limit (zeros: the variant has no gateway)."""

    initial: int
    lowest: int
    highest: int
    final: int
    admitted: int
    rejected: int
    """Calls refused at once with 503: they never reached the api."""
    during_mean: float
    """The limit's mean over the trigger (NaN: no gateway)."""
    over_time: Line
    """(seconds since the first request, the limit at the end of each 100 ms)."""


@dataclass(frozen=True)
class OverloadNumbers:
    """A variant's numbers (field order = results.json's `extra`)."""

    target_rate_per_s: float
    capacity_per_s: float
    trigger_start_s: float
    trigger_end_s: float
    arrivals_end_s: float
    before: Phase
    during: Phase
    after: Phase
    goodput_before_per_s: float
    """Flat copies for the summary table (`extra.<name>`)."""
    goodput_after_per_s: float
    goodput_ratio: float
    """after / before, each as a share of its own window's new requests: Poisson arrivals
    differ by several % between windows of a few seconds, the system's state does not."""
    throughput_after_per_s: float
    busy_ratio: float
    """The api's throughput after / its capacity."""
    scheduled_rate_per_s: float
    """New requests the clients' seeded Poisson schedule had per second (intended send
    times), from the trigger to the end of the arrivals: a few % from the target, by the
    dice, the same in every run."""
    offered_rate_per_s: float
    """First attempts really sent per second, in the same window."""
    offered_error: float
    """|offered - scheduled| / scheduled: how far the clients fell behind their own
    schedule (the target would mix in the schedule's sampling)."""
    send_lag_p99_ms: float
    """From a request's intended time to its first attempt leaving."""
    requests: int
    outcomes: Mapping[str, int]
    attempts: int
    retries: int
    api_completed: int
    api_late: int
    """Finished after the client's timeout: work nobody waited for."""
    api_shed: Mapping[str, int]
    api_queue_max: int
    overload_attempts: int
    """Attempts sent from the trigger's start to RECOVERY_S after its end: what reached
    nginx and the api (a request the client throttled locally is not sent)."""
    overload_accepts: int
    """Of those, the ones the backend accepted: answered in time, not 5xx or 429 (the
    client throttle's own definition, loadtests/admission.py)."""
    attempts_per_accept: float
    """overload_attempts / overload_accepts (NaN: nothing accepted)."""
    limit: LimitNumbers
    series: Mapping[str, Line]

    def stays_down(self, at_most: float, busy: float) -> bool:
        """Goodput after <= at_most x before, while the api finishes >= busy x capacity."""
        return self.goodput_ratio <= at_most and self.busy_ratio >= busy

    def recovers(self, at_least: float, min_before: int) -> bool:
        """Goodput after >= at_least x before, over >= min_before requests before."""
        enough = self.goodput_before_per_s * self.before_s >= min_before
        return self.goodput_ratio >= at_least and enough

    def throttled(self, at_most: float) -> bool:
        """Attempts reaching the backend during the overload <= at_most x its accepts."""
        return self.attempts_per_accept <= at_most

    def open_loop(self, tolerance: float) -> bool:
        return self.offered_error <= tolerance

    def goodput_summary(self) -> str:
        """Goodput after vs before, each against its window's new requests, in numbers."""
        before, after = self.before, self.after
        return (
            f"goodput {after.goodput_per_s:g}/s for {after.arrivals_per_s:g} new requests/s "
            f"({100 * after.goodput_share:.0f} %) from {RECOVERY_S:g} s after the trigger to "
            f"the end vs {before.goodput_per_s:g}/s for {before.arrivals_per_s:g}/s "
            f"({100 * before.goodput_share:.0f} %) before it: {100 * self.goodput_ratio:.0f} % "
            "of before"
        )

    @property
    def before_s(self) -> float:
        return self.before.end_s - self.before.start_s


# --- reading the run -------------------------------------------------------------------------


def read_logical(path: Path, origin_s: float) -> list[Logical]:
    """The clients' requests (loadtests/open_loop.py's logical.csv); [] when absent."""
    if not path.is_file():
        return []

    def since(value: str) -> float:
        return float(value) - origin_s if float(value) else NAN

    with path.open(newline="") as handle:
        return [
            Logical(
                since(row["intended_s"]),
                since(row["sent_s"]),
                since(row["end_s"]),
                int(row["attempts"]),
                int(row["status"]),
                row["outcome"],
            )
            for row in csv.DictReader(handle)
        ]


def completions(result: VariantResult) -> tuple[list[float], list[int]]:
    """The api's completions per 100 ms (bucket start, count), in run time."""
    pool = mapping(service_stats(result, "api").get("workpool"))
    times, counts = bucket_counts(pool.get("completions"), result.origin_s)
    return list(times), list(counts)


def _rate(times: Iterable[float], window: Window) -> float:
    seconds = window.duration_s
    return round(sum(window.holds(t) for t in times) / seconds, 2) if seconds > 0 else NAN


def phase(
    window: Window,
    logical: Sequence[Logical],
    attempt_times: Sequence[float],
    done: tuple[list[float], list[int]],
) -> Phase:
    seconds = window.duration_s
    finished = sum(n for t, n in zip(*done, strict=True) if window.holds(t))
    started = [r for r in logical if window.holds(r.intended_s) and r.outcome != "pending"]
    arrivals = _rate((r.intended_s for r in logical), window)
    goodput = _rate((r.end_s for r in logical if r.outcome == "ok"), window)
    return Phase(
        start_s=round(window.start_s, 3),
        end_s=round(window.end_s, 3),
        arrivals_per_s=arrivals,
        attempts_per_s=_rate(attempt_times, window),
        throughput_per_s=round(finished / seconds, 2) if seconds > 0 else NAN,
        goodput_per_s=goodput,
        goodput_share=_ratio(goodput, arrivals),
        latency_p50_ms=round(percentile([1000 * (r.end_s - r.intended_s) for r in started], 50)),
    )


def per_second(times: Iterable[float], end_s: float) -> Line:
    counts = Counter(math.floor(t) for t in times if 0 <= t < end_s)
    xs = tuple(float(s) for s in range(math.ceil(end_s)))
    return xs, tuple(float(counts[int(x)]) for x in xs)


def series(
    logical: Sequence[Logical], attempt_times: Sequence[float], done: tuple[list[float], list[int]]
) -> dict[str, Line]:
    end = max((r.intended_s for r in logical), default=0.0) + 1
    finished = [t for t, n in zip(*done, strict=True) for _ in range(n)]
    return {
        "new requests": per_second((r.intended_s for r in logical), end),
        "attempts sent": per_second(attempt_times, end),
        "api throughput": per_second(finished, end),
        "goodput": per_second((r.end_s for r in logical if r.outcome == "ok"), end),
    }


def windows(result: VariantResult, arrivals_end_s: float) -> tuple[Window, Window, Window]:
    """before (after the warm-up), during the trigger, and after (RECOVERY_S after it);
    empty windows when the trigger never came (every rate is then NaN)."""
    faults = fault_windows(result)
    if not faults:
        empty = Window(0.0, 0.0)
        return empty, empty, empty
    trigger = faults[0]
    return (
        Window(WARMUP_S, trigger.start_s, "before"),
        Window(trigger.start_s, trigger.end_s, "during"),
        Window(trigger.end_s + RECOVERY_S, arrivals_end_s, "after"),
    )


def accepted(status: int) -> bool:
    """An attempt the backend accepted, as the client throttle counts it."""
    return 0 < status < 500 and status != 429


def limit_numbers(result: VariantResult, during: Window) -> LimitNumbers:
    """The gateway's limit from its /admin/stats (zeros when there is no gateway)."""
    snapshot = mapping(service_stats(result, "gateway").get("adaptive_limit"))
    history = mapping(snapshot.get("history"))
    start, width = number(history.get("start_epoch_s")), number(history.get("bucket_s"))
    values = [float(whole(v)) for v in items(history.get("limits"))]
    if start != start or not width > 0:
        values = []
    xs = [round(start - result.origin_s + i * width, 3) for i in range(len(values))]
    points = [(x, v) for x, v in zip(xs, values, strict=True) if 0 <= x <= result.duration_s]
    in_trigger = [v for x, v in points if during.holds(x)]
    return LimitNumbers(
        initial=whole(mapping(snapshot.get("config")).get("initial")),
        lowest=whole(snapshot.get("lowest")),
        highest=whole(snapshot.get("highest")),
        final=whole(snapshot.get("limit")),
        admitted=whole(snapshot.get("admitted")),
        rejected=whole(snapshot.get("rejected")),
        during_mean=round(sum(in_trigger) / len(in_trigger), 1) if in_trigger else NAN,
        over_time=(tuple(x for x, _ in points), tuple(v for _, v in points)),
    )


def _ratio(part: float, whole_: float) -> float:
    return round(part / whole_, 3) if whole_ > 0 else NAN


def derive(ctx: DeriveContext) -> OverloadNumbers:
    result = ctx.result
    logical = read_logical(ctx.out_dir / LOGICAL_FILE, result.origin_s)
    attempt_times = [r.start_s - result.origin_s for r in ctx.requests]
    first_attempts = [r.sent_s for r in logical if not math.isnan(r.sent_s)]
    done = completions(result)
    arrivals_end = max((r.intended_s for r in logical), default=0.0)
    before, during, after = (
        phase(w, logical, attempt_times, done) for w in windows(result, arrivals_end)
    )
    target = number(ctx.variant.load.env.get("LAB_RATE"))
    pool = mapping(service_stats(result, "api").get("workpool"))
    capacity = number(pool.get("capacity_per_s"))
    offered_window = Window(during.start_s, arrivals_end)
    offered = _rate(first_attempts, offered_window)
    scheduled = _rate((r.intended_s for r in logical), offered_window)
    lags = [1000 * (r.sent_s - r.intended_s) for r in logical if not math.isnan(r.sent_s)]
    overload = Window(during.start_s, during.end_s + RECOVERY_S)
    sent = [r for r in ctx.requests if overload.holds(r.start_s - result.origin_s)]
    accepts = sum(accepted(r.status) for r in sent)
    return OverloadNumbers(
        target_rate_per_s=target,
        capacity_per_s=capacity,
        trigger_start_s=during.start_s,
        trigger_end_s=during.end_s,
        arrivals_end_s=round(arrivals_end, 3),
        before=before,
        during=during,
        after=after,
        goodput_before_per_s=before.goodput_per_s,
        goodput_after_per_s=after.goodput_per_s,
        goodput_ratio=_ratio(after.goodput_share, before.goodput_share),
        throughput_after_per_s=after.throughput_per_s,
        busy_ratio=_ratio(after.throughput_per_s, capacity),
        scheduled_rate_per_s=scheduled,
        offered_rate_per_s=offered,
        offered_error=round(abs(offered - scheduled) / scheduled, 3) if scheduled > 0 else NAN,
        send_lag_p99_ms=round(percentile(lags, 99), 1),
        requests=len(logical),
        outcomes=dict(sorted(Counter(r.outcome for r in logical).items())),
        attempts=len(ctx.requests),
        retries=sum(r.name.endswith(CLIENT_RETRY_SUFFIX) for r in ctx.requests),
        api_completed=whole(pool.get("completed")),
        api_late=whole(pool.get("late")),
        api_shed={k: whole(v) for k, v in mapping(pool.get("shed")).items()},
        api_queue_max=whole(pool.get("queue_max")),
        overload_attempts=len(sent),
        overload_accepts=accepts,
        attempts_per_accept=_ratio(len(sent), accepts),
        limit=limit_numbers(result, Window(during.start_s, during.end_s)),
        series=series(logical, attempt_times, done),
    )
