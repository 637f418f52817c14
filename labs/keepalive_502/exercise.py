"""keepalive-502's exercise: the idle timeouts of nginx and the api as a learner edits
them, graded on 502s, connection reuse and which side closes idle connections first, with
a load that probes around whichever idle timeout is the shorter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.engine.topology.nginx import parse_time
from labs.keepalive_502.measure import KeepaliveNumbers
from labs.keepalive_502.scenario import (
    CLOSED_FIRST_STRAY,
    GRADE_MIN_TRAFFIC,
    MIN_REQUESTS,
    PAST_S,
    PROBE_MAX_S,
    REUSED_MIN_PCT,
    TRAFFIC_GAP_S,
    USERS,
    api,
    bursts_load,
)


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
    n = result.numbers(KeepaliveNumbers)
    bad = result.count(502)
    share = 100 * bad / result.requests if result.requests else 0.0
    return (
        f"{bad} of {result.requests} requests were 502 ({share:.1f} %), {n.reuse_text()}, "
        f"{n.closed_text()}"
    )


def holds(result: VariantResult) -> bool:
    try:
        n = result.numbers(KeepaliveNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    closed = n.api_closed_first
    return (
        result.count(502) == 0
        and result.requests >= MIN_REQUESTS
        and n.serves_traffic(GRADE_MIN_TRAFFIC)
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
