"""A live feed served two ways: Server-Sent Events (GET /events) and WebSocket (GET /ws).

The feed is one schedule for every client: event k is due at k x interval on the wall
clock (epoch seconds); a subscription that names its start (`?since=EPOCH`) gets its
own: event k at since + first + (k - 1) x interval (--first-event-ms). Every event
carries its id and the time the server sent it, so a client on the same machine
measures each event's delay (receive time - `sent`).
- GET /events: `text/event-stream`; each event `id: k` + `data: {"id": k, "sent": t}`.
  A new stream starts at the next event due; with `Last-Event-ID: L` it resumes at
  L + 1, sending at once the events that fell due while the client was away. With
  --stream-events N the server ends a stream after N events (`event: end`); with
  --heartbeat-ms a comment line (`: heartbeat`) every so often keeps a quiet stream's
  bytes flowing. The first line says how long to wait before reconnecting (`retry:`).
- GET /ws: the same feed as WebSocket text messages; closed after --stream-events.
  A request that is not a WebSocket upgrade gets 400 (counted as a refused handshake).
Public: /events, /ws, /healthz, /readyz. Admin (nginx never exposes it): /admin/stats.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from services.common import health, shutdown


@dataclass(frozen=True)
class StreamConfig:
    replica_id: str = "stream-1"
    interval_s: float = 1.0
    """The feed's period (see `Schedule`)."""
    first_event_s: float = 0.0
    """A subscription's first event is due this long after its start (0 = interval_s)."""
    stream_events: int = 0
    """Events per stream before the server ends it (0 = never)."""
    heartbeat_s: float = 0.0
    """A comment line after this long without a write (0 = none)."""
    retry_ms: int = 3000
    """The reconnection delay the SSE stream advises (`retry:`)."""


@dataclass
class StreamState:
    config: StreamConfig
    counts: Counter[str] = field(default_factory=Counter)
    open_streams: int = 0
    peak_open_streams: int = 0


STATE = web.AppKey("state", StreamState)


def create_app(config: StreamConfig) -> web.Application:
    app = web.Application()
    app[STATE] = StreamState(config)
    app.router.add_get("/events", events)
    app.router.add_get("/ws", websocket)
    health.install(app, config.replica_id)
    app.router.add_get("/admin/stats", stats)
    shutdown.install(app)
    return app


REPLAY_LATE_S = 0.1
"""An event sent this long after it was due is counted as replayed (a resume's backlog)."""
BACKLOG_EVENTS = 100
"""How far back a resume reaches: older events are gone."""


@dataclass(frozen=True)
class Schedule:
    """When each event of a feed is due: event k (k >= 1) at
    origin + first + (k - 1) x interval. The global feed has origin 0 and first =
    interval (event k at k x interval, epoch seconds); a subscription that names its
    start (`?since=`) has its own, which a reconnect to the same URL keeps."""

    origin_s: float
    first_s: float
    interval_s: float

    def due(self, event_id: int) -> float:
        return self.origin_s + self.first_s + (event_id - 1) * self.interval_s

    def next_due(self, now: float) -> int:
        """The id of the first event due at or after `now`."""
        return max(1, math.ceil((now - self.origin_s - self.first_s) / self.interval_s) + 1)

    def first_event(self, now: float, last_event_id: str | None) -> tuple[int, bool]:
        """Where a stream starts, and whether it resumes (a valid Last-Event-ID): a new
        stream at the next event due, a resumed one right after the last it got."""
        live = self.next_due(now)
        if last_event_id is not None and last_event_id.strip().isdigit():
            return max(int(last_event_id) + 1, live - BACKLOG_EVENTS, 1), True
        return live, False


def schedule(config: StreamConfig, request: web.Request) -> Schedule:
    """The global feed, or the subscription's own when the URL names its start."""
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        since = 0.0
    if since <= 0:
        return Schedule(0.0, config.interval_s, config.interval_s)
    return Schedule(since, config.first_event_s or config.interval_s, config.interval_s)


def event_payload(event_id: int) -> str:
    return json.dumps({"id": event_id, "sent": round(time.time(), 6)})


class _Stream:
    """One open stream's bookkeeping: counted while open, closed exactly once."""

    def __init__(self, state: StreamState, kind: str) -> None:
        self.state, self.kind = state, kind

    def __enter__(self) -> _Stream:
        s = self.state
        s.counts[f"{self.kind}_streams"] += 1
        s.open_streams += 1
        s.peak_open_streams = max(s.peak_open_streams, s.open_streams)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.state.open_streams -= 1


async def _wait_for(due_s: float, heartbeat_s: float, last_write: float, beat) -> float:
    """Sleep until `due_s`, calling `beat()` whenever `heartbeat_s` passes without a
    write; the time of the last write."""
    while True:
        now = time.time()
        if now >= due_s:
            return last_write
        wake = due_s if not heartbeat_s else min(due_s, last_write + heartbeat_s)
        await asyncio.sleep(max(0.0, wake - now))
        if heartbeat_s and time.time() - last_write >= heartbeat_s and time.time() < due_s:
            await beat()
            last_write = time.time()


async def events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config = state.config
    feed = schedule(config, request)
    event_id, resumed = feed.first_event(time.time(), request.headers.get("Last-Event-ID"))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Replica": config.replica_id,
        }
    )
    await response.prepare(request)
    state.counts["resumed_streams"] += resumed

    async def beat() -> None:
        await response.write(b": heartbeat\n\n")
        state.counts["heartbeats"] += 1

    with _Stream(state, "sse"):
        try:
            await response.write(f"retry: {config.retry_ms}\n\n".encode())
            last_write, sent = time.time(), 0
            while not config.stream_events or sent < config.stream_events:
                due = feed.due(event_id)
                last_write = await _wait_for(due, config.heartbeat_s, last_write, beat)
                late = time.time() - due > REPLAY_LATE_S
                message = f"id: {event_id}\ndata: {event_payload(event_id)}\n\n"
                await response.write(message.encode())
                state.counts["events_sent"] += 1
                state.counts["events_replayed"] += late
                last_write, sent, event_id = time.time(), sent + 1, event_id + 1
            await response.write(b"event: end\ndata: {}\n\n")
            state.counts["sse_streams_ended"] += 1
            await response.write_eof()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            state.counts["sse_streams_dropped"] += 1
    return response


async def websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    config = state.config
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        state.counts["ws_refused"] += 1
        raise web.HTTPBadRequest(text="expected a WebSocket upgrade (Upgrade: websocket)")
    await ws.prepare(request)
    state.counts["ws_handshakes"] += 1
    feed = schedule(config, request)
    event_id = feed.next_due(time.time())
    with _Stream(state, "ws"):
        try:
            sent = 0
            while not config.stream_events or sent < config.stream_events:
                await asyncio.sleep(max(0.0, feed.due(event_id) - time.time()))
                if ws.closed:
                    break
                await ws.send_str(event_payload(event_id))
                state.counts["events_sent"] += 1
                sent, event_id = sent + 1, event_id + 1
            await ws.close()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            state.counts["ws_dropped"] += 1
    return ws


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    c = state.config
    return web.json_response(
        {
            "replica": c.replica_id,
            "interval_s": c.interval_s,
            "first_event_s": c.first_event_s,
            "stream_events": c.stream_events,
            "heartbeat_s": c.heartbeat_s,
            "retry_ms": c.retry_ms,
            "open_streams": state.open_streams,
            "peak_open_streams": state.peak_open_streams,
            "counts": dict(sorted(state.counts.items())),
        }
    )
