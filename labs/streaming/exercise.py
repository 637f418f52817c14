"""streaming's exercise: nginx's buffering and read timeout, the stream service's
heartbeat and reconnection advice, and the subscribers' resume, as a learner edits them
(applied to `idle-timeout`), graded on cuts, lost events and event delay."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.engine.topology.nginx import parse_time
from labs.streaming.measure import StreamNumbers
from labs.streaming.scenario import (
    INTERVAL_MS,
    LIVE_P99_MS,
    MIN_QUIET_EVENTS,
    QUIET_DURATION_S,
    READ_TIMEOUT,
    UNBUFFERED,
    load,
    nginx,
    stream,
)

READ_TIMEOUT_S = parse_time(READ_TIMEOUT)


def _stream_args(variant: Variant) -> Mapping[str, object]:
    return variant.services[0].args


def settings(variant: Variant) -> str:
    """The exercise's editable file."""
    args, spec = _stream_args(variant), variant.nginx
    buffering = "false" if "proxy_buffering off" in spec.extra_location else "true"
    resume = "true" if variant.load.env["LAB_STREAM_RESUME"] == "on" else "false"
    return f"""\
# streaming exercise. Subscribers to a live feed (an event every {INTERVAL_MS / 1000:g} s)
# lose their stream every few seconds and all reconnect at once. Change the values
# below, then run `lab grade streaming`.

[nginx]
# Collect the stream service's response in buffers before passing it on.
proxy_buffering = {buffering}
# Seconds nginx waits between two reads from the stream service before it gives up on
# the connection. It stands for an idle timeout you do not control (a cloud load
# balancer's, a corporate proxy's): it may be shortened, not lengthened.
proxy_read_timeout_s = {parse_time(spec.proxy.read_timeout):g}

[service]
# Milliseconds of quiet after which the stream sends a comment line (": heartbeat"),
# which subscribers ignore (0 = never).
heartbeat_ms = {args["heartbeat-ms"]}
# How long the stream tells subscribers to wait before reconnecting (SSE `retry:`).
retry_ms = {args["retry-ms"]}

[subscribers]
# On a reconnect, send Last-Event-ID (the last event received) so the stream resumes there.
resume = {resume}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    buffering = edits.boolean(data, "nginx.proxy_buffering")
    timeout_s = edits.whole(data, "nginx.proxy_read_timeout_s", 1, 3600)
    heartbeat_ms = edits.whole(data, "service.heartbeat_ms", 0, 600_000)
    retry_ms = edits.whole(data, "service.retry_ms", 0, 600_000)
    resume = edits.boolean(data, "subscribers.resume")
    return replace(
        base,
        nginx=nginx(() if buffering else UNBUFFERED, f"{timeout_s}s"),
        services=stream(INTERVAL_MS, 0, heartbeat_ms, retry_ms),
        load=load("sse", QUIET_DURATION_S, resume),
    )


def timeout_lengthened(variant: Variant) -> str | None:
    timeout_s = parse_time(variant.nginx.proxy.read_timeout)
    if timeout_s > READ_TIMEOUT_S:
        return (
            f"proxy_read_timeout_s = {timeout_s:g} outlasts this feed's {INTERVAL_MS / 1000:g} s "
            "of quiet, but it stands for an idle timeout you do not control, and the next "
            "feed may be quiet for minutes: that removes the timeout instead of living with "
            f"it. Keep it at most {READ_TIMEOUT_S:g} s."
        )
    return None


def symptom(result: VariantResult) -> str:
    n = result.numbers(StreamNumbers)
    return (
        f"{n.cuts:g} streams cut ({n.peak_reconnects_per_s:g} reconnects in one second at "
        f"the peak), {n.lost:g} events lost, {n.events:g} events received, p99 delay "
        f"{n.delay_p99_ms:,.1f} ms"
    )


def holds(result: VariantResult) -> bool:
    try:
        n = result.numbers(StreamNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return n.steady(MIN_QUIET_EVENTS, LIVE_P99_MS)


EXERCISE = Exercise(
    task=(
        f"A live feed sends an event every {INTERVAL_MS / 1000:g} s over Server-Sent Events. "
        "Every few seconds every subscriber's stream drops, and they all reconnect in the "
        "same second. Look at what nginx does with a connection that stays quiet, and what "
        "the stream could send between two events."
    ),
    broken="idle-timeout",
    fixed="heartbeat",
    settings=settings,
    apply=apply_settings,
    measure=symptom,
    holds=holds,
    expected=(
        f"0 streams cut, 0 events lost, >= {MIN_QUIET_EVENTS} events received with p99 delay "
        f"<= {LIVE_P99_MS:g} ms"
    ),
    advice="keep bytes flowing on a quiet stream more often than the proxy's idle timeout, "
    "and keep the stream unbuffered",
    guards=(timeout_lengthened,),
    hints=(
        f"nginx closes the connection after {READ_TIMEOUT_S:g} s without a read from the "
        "service; the feed is quiet for longer than that between two events.",
        "SSE has comment lines (starting with ':') that every client ignores: the service can "
        "send one when it has been quiet for a while (service.heartbeat_ms).",
        f"Set service.heartbeat_ms below {READ_TIMEOUT_S * 1000:g} (e.g. 2000) and keep "
        "nginx.proxy_buffering = false.",
    ),
)
