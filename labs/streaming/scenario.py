"""streaming's scenario: a live feed through nginx, as Server-Sent Events and WebSocket.

subscribers (Locust) -> nginx -> stream service (GET /events: SSE; GET /ws: WebSocket)

Every event carries the time the server sent it; the subscriber notes when it arrived.
- `buffered`: nginx's default `proxy_buffering on` holds a stream's small events until
  its buffer fills or the stream ends: events arrive late and in clumps.
  `unbuffered`: `proxy_buffering off`, each event passes at once.
- `idle-timeout`: a feed with an event every INTERVAL_S, longer than nginx's
  `proxy_read_timeout` (READ_TIMEOUT): nginx cuts every quiet stream; subscribers wait
  the stream's `retry:` and reconnect, all at once, with `Last-Event-ID`, and the
  server replays what they missed. `no-resume`: the same reconnects without
  Last-Event-ID lose the events due while they were away. `heartbeat`: a comment line
  every HEARTBEAT_MS keeps bytes flowing, and nothing is cut.
- `websocket-no-upgrade`: nginx forwards the handshake as plain HTTP/1.0 without
  `Upgrade`/`Connection` (hop-by-hop headers): the service refuses it. `websocket`:
  `proxy_http_version 1.1` and the two headers passed on: every handshake succeeds.

The constants and the variants; it imports only the engine.
"""

from __future__ import annotations

from dataclasses import replace

from labs.engine.model.spec import LoadSpec, NginxSpec, Proxy, ServiceSpec, Variant

USERS = 20
FAST_INTERVAL_MS = 200
STREAM_EVENTS = 15
"""Fast feed: an event every 200 ms, 15 to a stream (3 s), then the next stream."""
FAST_DURATION_S = 15
INTERVAL_MS = 7000
FIRST_EVENT_MS = 1000
"""Quiet feed: a subscription's first event 1 s after it starts, then one every 7 s,
longer than nginx's read timeout."""
READ_TIMEOUT = "5s"
RETRY_MS = 3000
"""The reconnection delay the stream advises (`retry:`; a browser's EventSource default)."""
JITTER_S = 0.5
HEARTBEAT_MS = 2000
QUIET_DURATION_S = 30

# What the checks (and the exercise's grade) hold the numbers to.
DELAY_FACTOR = 10.0
"""buffered's p99 event delay is at least this many times unbuffered's."""
LIVE_P99_MS = 100.0
"""An unbuffered stream delivers 99 % of its events within this."""
MIN_EVENTS = 500
"""Events a fast variant needs for its p99 to mean something."""
MIN_QUIET_EVENTS = 40
"""Events a quiet-feed variant needs (20 subscribers x 3 events of 8 s)."""
MIN_HANDSHAKES = 20

WS_UPGRADE = (
    "proxy_http_version 1.1",
    "proxy_set_header Upgrade $http_upgrade",
    "proxy_set_header Connection $connection_upgrade",
)
CONNECTION_UPGRADE = ("map $http_upgrade $connection_upgrade { default upgrade; '' close; }",)
"""nginx's documented idiom: `Connection: upgrade` only when the client asked to upgrade."""
UNBUFFERED = ("proxy_buffering off",)


def stream(
    interval_ms: int, stream_events: int, heartbeat_ms: int = 0, retry_ms: int = RETRY_MS
) -> tuple[ServiceSpec, ...]:
    args = {
        "interval-ms": interval_ms,
        "first-event-ms": FIRST_EVENT_MS,
        "stream-events": stream_events,
        "heartbeat-ms": heartbeat_ms,
        "retry-ms": retry_ms,
    }
    return (ServiceSpec("stream", module="services.stream", args=args),)


def load(transport: str, duration_s: int, resume: bool = True) -> LoadSpec:
    return LoadSpec(
        locustfile="streams.py",
        users=USERS,
        spawn_rate=USERS,
        duration_s=duration_s,
        env={
            "LAB_STREAM_TRANSPORT": transport,
            "LAB_STREAM_RESUME": "on" if resume else "off",
            "LAB_STREAM_JITTER_S": str(JITTER_S),
        },
    )


def nginx(
    location: tuple[str, ...], read_timeout: str = "30s", http: tuple[str, ...] = ()
) -> NginxSpec:
    return NginxSpec(
        proxy=Proxy(read_timeout=read_timeout),
        backend="stream",
        extra_location=location,
        http_directives=http,
    )


BUFFERED = Variant(
    name="buffered",
    summary=f"SSE, an event every {FAST_INTERVAL_MS} ms, {STREAM_EVENTS} to a stream; "
    "nginx's default proxy_buffering on",
    nginx=nginx(()),
    services=stream(FAST_INTERVAL_MS, STREAM_EVENTS),
    load=load("sse", FAST_DURATION_S),
    twin="unbuffered",
)
UNBUFFERED_VARIANT = replace(
    BUFFERED,
    name="unbuffered",
    summary="the same stream with proxy_buffering off",
    nginx=nginx(UNBUFFERED),
    twin="buffered",
)
IDLE_TIMEOUT = Variant(
    name="idle-timeout",
    summary=f"SSE, an event every {INTERVAL_MS / 1000:g} s, proxy_read_timeout {READ_TIMEOUT}; "
    "subscribers reconnect with Last-Event-ID",
    nginx=nginx(UNBUFFERED, READ_TIMEOUT),
    services=stream(INTERVAL_MS, 0),
    load=load("sse", QUIET_DURATION_S),
    twin="heartbeat",
)
NO_RESUME = replace(
    IDLE_TIMEOUT,
    name="no-resume",
    summary="the same cuts; subscribers reconnect without Last-Event-ID",
    load=load("sse", QUIET_DURATION_S, resume=False),
    twin="idle-timeout",
)
HEARTBEAT = replace(
    IDLE_TIMEOUT,
    name="heartbeat",
    summary=f"the same feed with a heartbeat comment every {HEARTBEAT_MS / 1000:g} s",
    services=stream(INTERVAL_MS, 0, HEARTBEAT_MS),
    twin="idle-timeout",
)
WEBSOCKET_NO_UPGRADE = Variant(
    name="websocket-no-upgrade",
    summary=f"WebSocket, a message every {FAST_INTERVAL_MS} ms; nginx's defaults (HTTP/1.0 "
    "upstream, Upgrade and Connection not passed on)",
    nginx=nginx(UNBUFFERED),
    services=stream(FAST_INTERVAL_MS, STREAM_EVENTS),
    load=load("ws", FAST_DURATION_S),
    twin="websocket",
)
WEBSOCKET = replace(
    WEBSOCKET_NO_UPGRADE,
    name="websocket",
    summary="the same with proxy_http_version 1.1 and the Upgrade and Connection headers",
    nginx=nginx(UNBUFFERED + WS_UPGRADE, http=CONNECTION_UPGRADE),
    twin="websocket-no-upgrade",
)
VARIANTS = (
    BUFFERED,
    UNBUFFERED_VARIANT,
    IDLE_TIMEOUT,
    NO_RESUME,
    HEARTBEAT,
    WEBSOCKET_NO_UPGRADE,
    WEBSOCKET,
)
