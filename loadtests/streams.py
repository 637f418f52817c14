"""Subscribers to a live feed (services/stream): Server-Sent Events or WebSocket.

Each user holds one stream open and reads it as events arrive; every event carries the
time the server sent it, and the user notes when it got it (the same machine clock, so
the difference is the event's delay through the proxy). A stream the server ends
(`event: end`, or a WebSocket close) is followed at once by the next one; a stream
that drops (the connection closes with no end) is a *cut*: like a browser's
EventSource the user waits the stream's `retry:` (plus a little jitter) and reconnects,
sending `Last-Event-ID` (the last id it received) unless LAB_STREAM_RESUME=off. An SSE
subscriber's URL names its start (`?since=`): the feed it follows is its own (the
service's schedule from that start), the same on every reconnect.
A WebSocket handshake that is refused (no 101) is retried after LAB_STREAM_REFUSED_WAIT_S.

Every connection is one Locust request ("/events" or "/ws": its status and the time to
its response headers). When the engine records (LAB_EVENTS_FILE), two CSVs land next to
that file: `streams.csv`, one row per connection (user, connection number, transport,
start, end, status, how it ended: ended | cut | refused | failed | open (the run
stopped it; its end is then the run's), the Last-Event-ID it sent, events received,
heartbeats received, the subscription's start it named: 0 for none), and
`stream_events.csv`, one row per event received (user, connection number, id, sent,
received).

Environment (all optional):
  LAB_STREAM_TRANSPORT       sse | ws (default sse)
  LAB_STREAM_RESUME          on | off (default on): send Last-Event-ID on a reconnect
  LAB_STREAM_JITTER_S        up to this much extra wait before a reconnect (default 1.0)
  LAB_STREAM_REFUSED_WAIT_S  wait after a refused or failed connection (default 0.5)

By hand:
  locust -f loadtests/streams.py --host http://127.0.0.1:PORT -u 20 -r 20
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time
from dataclasses import astuple, dataclass
from urllib.parse import urlsplit

import gevent
import requests
from locust import User, constant, events, task

from loadtests import recorder  # records every request for the engine

TRANSPORT = os.environ.get("LAB_STREAM_TRANSPORT", "sse").lower()
RESUME = os.environ.get("LAB_STREAM_RESUME", "on").lower() == "on"
JITTER_S = float(os.environ.get("LAB_STREAM_JITTER_S", "1.0"))
REFUSED_WAIT_S = float(os.environ.get("LAB_STREAM_REFUSED_WAIT_S", "0.5"))
DEFAULT_RETRY_S = 3.0
"""EventSource's reconnection delay until the stream says otherwise (`retry:`)."""
STREAMS_FILE, EVENTS_FILE = "streams.csv", "stream_events.csv"


@dataclass
class Connection:
    user: str
    number: int
    transport: str
    start_s: float
    end_s: float = 0.0
    status: int = 0
    outcome: str = "open"
    last_event_id: str = ""
    events: int = 0
    heartbeats: int = 0
    since_s: float = 0.0


_connections: list[Connection] = []
_events: list[tuple[str, int, int, float, float]] = []


class _Reply:
    """What the recorder reads from a response: its status and headers."""

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status_code, headers


def _fire(name: str, conn: Connection, reply: _Reply | None, ok: bool) -> None:
    events.request.fire(
        request_type="GET",
        name=name,
        response_time=(time.time() - conn.start_s) * 1000,
        response_length=0,
        response=reply,
        exception=None if ok else RuntimeError(f"status {reply.status_code if reply else 0}"),
        start_time=conn.start_s,
        context={},
    )


class Subscriber(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.name = f"u{len(_connections)}-{random.getrandbits(24):06x}"
        self.number = 0
        self.last_id: int | None = None
        self.retry_s = DEFAULT_RETRY_S
        self.session = requests.Session()
        self.since = time.time()

    def _connection(self) -> Connection:
        self.number += 1
        conn = Connection(self.name, self.number, TRANSPORT, time.time())
        conn.since_s = self.since if TRANSPORT == "sse" else 0.0
        _connections.append(conn)
        return conn

    def _received(self, conn: Connection, payload: str) -> None:
        data = json.loads(payload)
        conn.events += 1
        _events.append((conn.user, conn.number, int(data["id"]), float(data["sent"]), time.time()))

    @task
    def subscribe(self) -> None:
        conn = self._connection()
        if TRANSPORT == "ws":
            self._websocket(conn)
        else:
            self._sse(conn)
        conn.end_s = time.time()
        if conn.outcome == "cut":
            gevent.sleep(self.retry_s + random.uniform(0, JITTER_S))
        elif conn.outcome in ("refused", "failed"):
            gevent.sleep(REFUSED_WAIT_S)

    def _sse(self, conn: Connection) -> None:
        headers = {"Accept": "text/event-stream"}
        if RESUME and self.last_id is not None:
            headers["Last-Event-ID"] = conn.last_event_id = str(self.last_id)
        try:
            response = self.session.get(
                f"{self.host}/events",
                params={"since": f"{self.since:.3f}"},
                headers=headers,
                stream=True,
                timeout=(5, 300),
            )
        except (requests.RequestException, OSError):
            conn.outcome = "failed"
            _fire("/events", conn, None, False)
            return
        conn.status = response.status_code
        reply = _Reply(response.status_code, dict(response.headers))
        _fire("/events", conn, reply, conn.status == 200)
        if conn.status != 200:
            conn.outcome = "refused"
            response.close()
            return
        buffer = b""
        try:
            for chunk in response.iter_content(chunk_size=None):
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    if self._sse_block(conn, block.decode()):
                        conn.outcome = "ended"
                        return
            conn.outcome = "cut"
        except (requests.RequestException, OSError):
            conn.outcome = "cut"
        finally:
            response.close()

    def _sse_block(self, conn: Connection, block: str) -> bool:
        """One SSE message; True when it is the server's end of the stream."""
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                conn.heartbeats += 1
                continue
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
        if "retry" in fields and fields["retry"].isdigit():
            self.retry_s = int(fields["retry"]) / 1000
        if fields.get("event") == "end":
            return True
        if "data" in fields and "id" in fields:
            self.last_id = int(fields["id"])
            self._received(conn, fields["data"])
        return False

    def _websocket(self, conn: Connection) -> None:
        url = urlsplit(self.host)
        try:
            sock = socket.create_connection((url.hostname, url.port or 80), timeout=300)
        except OSError:
            conn.outcome = "failed"
            _fire("/ws", conn, None, False)
            return
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            reader = _Reader(sock)
            head = reader.until(b"\r\n\r\n").decode("latin-1")
            conn.status = int(head.split(" ", 2)[1])
            _fire("/ws", conn, _Reply(conn.status, _headers(head)), conn.status == 101)
            if conn.status != 101:
                conn.outcome = "refused"
                return
            while True:
                opcode, payload = reader.frame()
                if opcode == 0x1:
                    self._received(conn, payload.decode())
                elif opcode == 0x8:
                    sock.sendall(b"\x88\x80" + os.urandom(4))  # our close, masked, empty
                    conn.outcome = "ended"
                    return
        except (OSError, ValueError, IndexError):
            if conn.status:
                conn.outcome = "cut"
            else:
                conn.outcome = "failed"
                _fire("/ws", conn, None, False)
        finally:
            sock.close()


def _headers(head: str) -> dict[str, str]:
    lines = head.split("\r\n")[1:]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines) if k}


class _Reader:
    """Bytes from a socket: up to a marker, an exact count, or one WebSocket frame
    (a server's frames are never masked)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buffer += chunk

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self.exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self.exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(self.exactly(8), "big")
        return first & 0x0F, self.exactly(length)


@events.quitting.add_listener
def _write(**_kw) -> None:
    now = time.time()
    for conn in _connections:
        conn.end_s = conn.end_s or now  # still open when the run stopped
    recorder.write_csv_beside_events(
        STREAMS_FILE,
        ["user", "connection", "transport", "start_s", "end_s", "status", "outcome",
         "last_event_id", "events", "heartbeats", "since_s"],
        (astuple(c) for c in _connections),
    )  # fmt: skip
    recorder.write_csv_beside_events(
        EVENTS_FILE, ["user", "connection", "id", "sent_s", "received_s"], _events
    )
