"""keep-alive 502: nginx reuses an upstream connection the backend is closing.

nginx keeps idle upstream connections for 60 s; the api closes idle ones after
1 s. When a request lands on a pooled connection just as the api closes it, nginx
gets a reset or an early EOF and answers 502. The fix is the rule "the side that
reuses a connection must give up on it first": the load balancer's idle timeout
shorter than the backend's, and still longer than the gaps in the traffic, or the
pool never serves a second request.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.checks import nginx_errors_at_least, status_absent, status_at_least
from labs.engine.model.spec import (
    Check,
    DeriveContext,
    Exercise,
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.topology.nginx import UPSTREAM_RESET_KINDS, parse_time

API_IDLE_S = 1.0
USERS = 32
TRAFFIC_GAP_S = 1.0
"""The traffic: a burst of USERS POSTs about once a second (then idle until the next)."""
REUSED_MIN_PCT = 80.0
"""A pool that serves the traffic: at least this share of its requests on a reused
connection (measured here: 100 % with the fix, 29-70 % broken, 2-10 % with nginx's
900ms, under the traffic's gap)."""
DURATION_S = 36
"""Bursts per run: about one in three races the api's close and fails in a clump of 1-31
502s, so 36 of them keep the broken variant far above its 10 502s on a busy machine."""
PROBE_MAX_S = 15.0
"""The longest idle gap a grade drives (it must fit, with the traffic, in one run)."""
CLOSED_FIRST_STRAY = 8
"""A grade tolerates this many idle connections closed by the api first. With nginx
giving up first a few strays happen when the two timeouts are close and nginx's own
timer fires late on a busy machine (short-pool, 900ms vs 1 s: 0-3 per run); with the api
giving up first it closes the whole pool (32) at every gap past its timeout."""
PAST_S = 0.1
"""The probe past a timeout idles this much longer than it."""
OFFSET_MS = (-9, -1)
"""The sweep of each gap, counted from the previous burst's median answer. In nginx's
time the bursts land from about 5 ms before to 10 ms after the gap (its log shows it),
so they straddle an idle timeout of that length: the api's closes race the burst."""


def bursts_load(gaps_s: Sequence[float], method: str = "POST") -> LoadSpec:
    """Synchronized bursts of USERS requests, idling each gap of `gaps_s` in turn."""
    return LoadSpec(
        locustfile="synchronized_bursts.py",
        users=USERS,
        spawn_rate=USERS,
        duration_s=DURATION_S,
        env={
            "LAB_METHOD": method,
            "LAB_IDLE_MS": ",".join(f"{gap * 1000:g}" for gap in gaps_s),
            "LAB_OFFSET_MIN_MS": str(OFFSET_MS[0]),
            "LAB_OFFSET_MAX_MS": str(OFFSET_MS[1]),
        },
    )


# Synchronized bursts a second apart, each fired 1 s + offset after the previous burst's
# median answer: the gaps straddle the broken api's 1 s idle timeout, where (measured
# here) a burst lands on pooled connections at the moment the api closes them.
LOAD = bursts_load([TRAFFIC_GAP_S])


def api(idle_timeout_s: float) -> tuple[ServiceSpec, ...]:
    return (ServiceSpec("api", args={"keepalive-timeout": idle_timeout_s}),)


BROKEN = Variant(
    name="broken",
    summary=f"api closes idle connections after {API_IDLE_S:g} s; nginx keeps them 60 s; POST",
    nginx=NginxSpec(upstream=Upstream(keepalive=USERS, keepalive_timeout="60s")),
    services=api(API_IDLE_S),
    load=LOAD,
    twin="fixed",
)
FIXED = replace(
    BROKEN,
    name="fixed",
    summary="api keeps idle connections 75 s, longer than nginx's 60 s; POST",
    services=api(75.0),
    twin="broken",
)
MASKED = replace(
    BROKEN,
    name="masked",
    summary="as broken, but GET: nginx silently retries the reset request on a new connection",
    load=bursts_load([TRAFFIC_GAP_S], method="GET"),
    twin="fixed",
)
SHORT_POOL = replace(
    BROKEN,
    name="short-pool",
    summary="nginx drops idle connections after 900ms, before the api's 1 s: no 502s, but "
    "the bursts come ~1 s apart, so no connection is ever reused",
    nginx=NginxSpec(upstream=Upstream(keepalive=USERS, keepalive_timeout="900ms")),
    twin="fixed",
)


# --- measuring ------------------------------------------------------------------------------


def read_bursts(path: Path) -> list[dict[str, str]]:
    """bursts.csv (loadtests/synchronized_bursts.py): one row per burst; [] without it."""
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def traffic_reuse(rows: Sequence[Mapping[str, str]]) -> tuple[int, int]:
    """(requests, of them on a reused connection) over the traffic's bursts: those that
    followed the traffic's ~1 s gap (not the first burst, which opens the pool, nor the
    grade's probes of longer or shorter gaps)."""
    traffic = [row for row in rows if row.get("gap_ms") and
               math.isclose(float(row["gap_ms"]), TRAFFIC_GAP_S * 1000)]  # fmt: skip
    return sum(int(r["requests"]) for r in traffic), sum(int(r["reused"]) for r in traffic)


def api_connections(result: VariantResult) -> tuple[int, int, int | None]:
    """(work requests, on a reused connection, connections the api closed first) summed
    over the api replicas' /admin/stats; closed first is None when any replica cannot
    tell (no /proc/net/tcp) or did not answer."""
    requests = reused = 0
    closed: int | None = 0
    for stats in result.services.get("api", []):
        numbers = stats.get("connections") or {}
        requests += int(numbers.get("requests", 0))
        reused += int(numbers.get("reused", 0))
        first = numbers.get("closed_first")
        closed = None if closed is None or not isinstance(first, int) else closed + first
    return requests, reused, closed


def derive(ctx: DeriveContext) -> dict[str, object]:
    traffic, reused = traffic_reuse(read_bursts(ctx.out_dir / "bursts.csv"))
    api_requests, api_reused, closed_first = api_connections(ctx.result)
    return {
        "traffic_requests": traffic,
        "reused_pct": round(100 * reused / traffic, 1) if traffic else None,
        "api_reused_pct": round(100 * api_reused / api_requests, 1) if api_requests else None,
        "api_closed_first": closed_first,
    }


def reuse_text(result: VariantResult) -> str:
    pct = result.number("reused_pct")
    shown = "n/a" if math.isnan(pct) else f"{pct:.0f} %"
    return f"{shown} of the traffic rode a reused connection"


def closed_text(result: VariantResult) -> str:
    closed = result.extra.get("api_closed_first")
    if closed is None:
        return "who closed idle connections first is unknown (no /proc/net/tcp, or no stats)"
    return f"the api closed {closed} idle connection{'' if closed == 1 else 's'} first"


def reuses_connections(variant: str) -> Check:
    """`variant`'s pool serves the traffic: most requests ride a reused connection."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        pct = r.number("reused_pct")
        traffic = int(r.extra.get("traffic_requests") or 0)
        return pct >= REUSED_MIN_PCT and traffic >= 200, (
            f"{variant}: {reuse_text(r)} ({traffic} requests), expected >= "
            f"{REUSED_MIN_PCT:g} % of >= 200"
        )

    return Check(f"{variant}_reuses_connections", evaluate, (variant,))


def short_pool_reuses_nothing() -> Check:
    """The trap of lowering nginx's timeout under the traffic's gap: no 502s, and no pool."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results["short-pool"]
        pct = r.number("reused_pct")
        passed = r.count(502) == 0 and r.requests >= 200 and pct <= 25
        return passed, (
            f"short-pool: {r.count(502)} of {r.requests} were 502 and {reuse_text(r)}, "
            "expected 0 502s and <= 25 % reused"
        )

    return Check("short_pool_has_no_502_and_reuses_nothing", evaluate, ("short-pool",))


def api_closes_first(variant: str, count: int) -> Check:
    """The rule broken, seen directly: the api closed idle connections nginx still held
    (every time, not only when a burst races the close)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        closed = r.extra.get("api_closed_first")
        passed = isinstance(closed, int) and closed >= count
        return passed, f"{variant}: {closed_text(r)}, expected >= {count}"

    return Check(f"{variant}_api_closes_idle_connections_first", evaluate, (variant,))


# --- the exercise -----------------------------------------------------------------------------


def settings(variant: Variant) -> str:
    """The exercise's editable file: every knob the fix could live in."""
    upstream = variant.nginx.upstream
    return f"""\
# keepalive-502 exercise. Clients see 502 Bad Gateway under bursty load, yet the
# api never returns an error itself. The traffic: {USERS} POSTs at once, about once
# a second. Change the values below, then run `lab grade keepalive-502`.

[api]
# Seconds the api keeps an idle keep-alive connection open before closing it.
keepalive_timeout_s = {variant.services[0].args["keepalive-timeout"]}

[nginx.upstream]
# Idle connections nginx keeps open to the api (its connection pool).
keepalive = {upstream.keepalive}
# How long nginx keeps an idle upstream connection (nginx syntax: 60s, 900ms, 2m).
keepalive_timeout = "{upstream.keepalive_timeout}"
"""


def grade_gaps(api_s: float, nginx_s: float) -> list[float]:
    """The idle gaps a grade drives for a pair of idle timeouts, in turn: the traffic's
    ~1 s, then one just past the shorter timeout (whichever side gives up first closes
    every pooled connection there: it shows who), four more of the traffic (does the pool
    serve it?), then one straddling the shorter timeout (where the api's close races a
    burst, if the api is the side that gives up first). A shorter timeout beyond what a
    run can hold idle is not probed: nginx's, since then nginx gives up first and the
    traffic shows the rest; the api's is refused (ValueError)."""
    shorter = max(min(api_s, nginx_s), 0.05)  # a burst needs a gap after its answers
    if shorter <= PROBE_MAX_S:
        traffic = [TRAFFIC_GAP_S] * 4
        return [TRAFFIC_GAP_S, round(shorter + PAST_S, 3), *traffic, round(shorter, 3)]
    if api_s <= nginx_s:
        raise ValueError(
            f"api.keepalive_timeout_s = {api_s:g} cannot be graded with nginx keeping idle "
            f"connections {nginx_s:g} s: the api would be the first to close one, after "
            f"{api_s:g} s idle, and a grade leaves connections idle for at most "
            f"{PROBE_MAX_S:g} s (try at most {PROBE_MAX_S:g})"
        )
    return [TRAFFIC_GAP_S]


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    api_timeout = edits.number(data, "api.keepalive_timeout_s", 0, 86400, "seconds")
    pool = edits.whole(data, "nginx.upstream.keepalive", 0, 1024)
    timeout = str(edits.table(data, "nginx.upstream")["keepalive_timeout"])  # nginx judges it
    try:
        nginx_s: float | None = parse_time(timeout)
    except ValueError:
        nginx_s = None  # not a time at all: nginx rejects it with its own message
    load = base.load
    if nginx_s is not None:
        load = bursts_load(grade_gaps(api_timeout, nginx_s), base.load.env["LAB_METHOD"])
    return replace(
        base,
        services=api(api_timeout),
        nginx=replace(
            base.nginx,
            upstream=replace(base.nginx.upstream, keepalive=pool, keepalive_timeout=timeout),
        ),
        load=load,
    )


def measure(result: VariantResult) -> str:
    n = result.count(502)
    share = 100 * n / result.requests if result.requests else 0.0
    return (
        f"{n} of {result.requests} requests were 502 ({share:.1f} %), {reuse_text(result)}, "
        f"{closed_text(result)}"
    )


def holds(result: VariantResult) -> bool:
    closed = result.extra.get("api_closed_first")
    return (
        result.count(502) == 0
        and result.requests >= 200
        and result.number("reused_pct") >= REUSED_MIN_PCT
        and int(result.extra.get("traffic_requests") or 0) >= 100
        and (closed is None or closed <= CLOSED_FIRST_STRAY)  # None: no /proc; 502s decide
    )


def pool_removed(variant: Variant) -> str | None:
    if variant.nginx.upstream.keepalive == 0:
        return (
            "keepalive = 0 turns nginx's connection pool off. The 502s go away because "
            "nothing is reused, and every request pays a new TCP connection (under load: "
            "ephemeral ports in TIME_WAIT). Keep the pool; make the two idle timeouts agree."
        )
    return None


def pool_emptied(variant: Variant) -> str | None:
    try:
        seconds = parse_time(variant.nginx.upstream.keepalive_timeout)
    except ValueError:
        return None  # not a time at all: nginx rejects it with its own message
    if seconds < 0.1:
        return (
            "an upstream keepalive_timeout under 100ms closes pooled connections almost "
            "at once, which is the same as having no pool. Keep connections reusable."
        )
    return None


EXERCISE = Exercise(
    task=(
        "Clients see 502 Bad Gateway under a bursty POST load, though the api is healthy, "
        "fast, and never returns an error itself. nginx's error log says "
        '"upstream prematurely closed connection". Look at how long each side of the '
        "nginx -> api hop keeps an idle connection open. The grade runs the traffic "
        "(bursts about 1 s apart) plus idle gaps just under and just past the shorter of "
        "the two idle timeouts, and looks at 502s, at connection reuse, and at which side "
        "closes idle connections first."
    ),
    broken="broken",
    fixed="fixed",
    settings=settings,
    apply=apply_settings,
    measure=measure,
    holds=holds,
    expected=(
        f"0 502s, >= {REUSED_MIN_PCT:g} % of the traffic on reused connections, and nginx "
        f"giving up on idle connections first (the api closing at most {CLOSED_FIRST_STRAY})"
    ),
    advice="look at how long each side keeps an idle connection open, which side must give "
    "up on it first, and whether the pool still outlives the gaps in the traffic",
    guards=(pool_removed, pool_emptied),
    hints=(
        "A 502 here means nginx sent a request on a connection the api had just closed. "
        "Who closes idle connections first, nginx or the api?",
        "nginx keeps an idle upstream connection for nginx.upstream.keepalive_timeout; the "
        "api closes one after api.keepalive_timeout_s. Compare the two.",
        "The side that reuses connections (nginx) must give up on them before the side that "
        "closes them (the api): make api.keepalive_timeout_s longer than nginx's "
        "keepalive_timeout (e.g. 75 vs 60s). Lowering nginx's instead works only while it "
        "stays longer than the gaps in the traffic (about 1 s here): under that, nginx drops "
        "every connection before its next use, and the pool serves nothing.",
    ),
)

LAB = Lab(
    name="keepalive-502",
    title="Keep-alive mismatch: 502s from a reused upstream connection",
    question="Why does nginx return 502 when the backend is healthy and fast?",
    guide=Path(__file__).with_name("guide.md"),
    variants=(BROKEN, FIXED, MASKED, SHORT_POOL),
    checks=(
        status_at_least("broken", 502, count=10, share=0.01),
        nginx_errors_at_least("broken", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
        api_closes_first("broken", count=32),
        status_absent("fixed", 502, min_requests=200),
        # Reuse is what a "fix" that empties the pool loses: proven against short-pool.
        replace(reuses_connections("fixed"), twins={"fixed": "short-pool"}),
        # What hides the 502s is nginx retrying a GET; the same load as a POST shows them.
        replace(status_absent("masked", 502, min_requests=200), twins={"masked": "broken"}),
        nginx_errors_at_least("masked", UPSTREAM_RESET_KINDS, 1, "upstream_resets"),
        short_pool_reuses_nothing(),
    ),
    key_metrics=(
        "requests",
        "status.200",
        "status.502",
        "upstream_retried",
        "extra.reused_pct",
        "extra.api_closed_first",
        "p99_ms",
    ),
    parallel_variants=True,
    derive=derive,
    exercise=EXERCISE,
)
