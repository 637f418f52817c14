"""Synchronized bursts: every user fires at once, all wait for the slowest
response, then all sit idle for the same gap before the next burst.

This is the load shape that exposes keep-alive races. Every user fires together,
so nginx needs every pooled upstream connection at once, and every one of them
then idles for about the same time. The gap is LAB_IDLE_MS plus an offset swept
deterministically (golden-ratio sequence) over [LAB_OFFSET_MIN_MS, LAB_OFFSET_MAX_MS],
counted from the median response of the previous burst (when the backend armed most of its
idle timers), so the idle time keeps crossing the backend's keep-alive timeout
instead of always landing on one side of it.

Users that pace themselves independently do not reproduce it: nginx reuses the
most recently returned connection first, so the old ones time out unnoticed.

Each response's X-Connection-Requests header (the api numbers the requests on each
connection) says whether it rode a reused connection. When the engine records, the
file bursts.csv (beside its requests.csv) gets one row per burst: the gap it followed,
its requests, 502s, requests with no response, and requests on a reused connection.

Environment (all optional):
  LAB_METHOD          POST (default) or GET
  LAB_PATH            request path (default /work)
  LAB_IDLE_MS         base gap between bursts in ms (default 1000), or a cycle of gaps
                      taken in turn, comma-separated ("1000,1000,5000": two bursts 1 s
                      apart, then one after 5 s, and again)
  LAB_OFFSET_MIN_MS   sweep start in ms (default -9)
  LAB_OFFSET_MAX_MS   sweep end in ms (default -1)

By hand, with the web UI:
  locust -f loadtests/synchronized_bursts.py --host http://127.0.0.1:PORT -u 32 -r 32
"""

from __future__ import annotations

import contextlib
import os
import time

import gevent
from locust import FastHttpUser, constant, events, task

from loadtests import recorder  # records every request for the engine
from loadtests.pacing import BurstClock

METHOD = os.environ.get("LAB_METHOD", "POST").upper()
PATH = os.environ.get("LAB_PATH", "/work")
BODY = b'{"item": "widget", "quantity": 1}'
REQUESTS_HEADER = "X-Connection-Requests"
"""The api numbers the requests on each connection: 1 = a new connection, more = reused."""
JOIN_WINDOW_S = 0.005
"""A user later than this after the burst fired waits for the next one."""

CLOCK = BurstClock(
    first=time.time() + 1.0,
    gap_s=[float(ms) / 1000 for ms in os.environ.get("LAB_IDLE_MS", "1000").split(",")],
    offset_low_s=float(os.environ.get("LAB_OFFSET_MIN_MS", "-9")) / 1000,
    offset_high_s=float(os.environ.get("LAB_OFFSET_MAX_MS", "-1")) / 1000,
)
BURSTS: dict[int, list[float]] = {}
"""Burst index -> [first start (epoch s), requests, 502s, no response, reused connections]."""


def _wait_for_burst(last: int) -> int:
    """Sleep until the next burst after `last` fires and join it; returns its index. A
    user that finished early polls until the slowest response of its burst is back and
    the next burst is scheduled."""
    woke_for = None
    while wait := CLOCK.wait_s(time.time(), last, woke_for):
        woke_for = CLOCK.index if time.time() < CLOCK.fire_at else None
        gevent.sleep(wait)
    return CLOCK.join()


def _tally(burst: int, started: float, response) -> None:
    """Count one answer of `burst`."""
    row = BURSTS.setdefault(burst, [started, 0, 0, 0, 0])
    row[0] = min(row[0], started)
    row[1] += 1
    status = getattr(response, "status_code", 0) or 0
    row[2] += status == 502
    row[3] += status == 0
    with contextlib.suppress(AttributeError, ValueError):  # no response, or no header
        row[4] += int(response.headers.get(REQUESTS_HEADER) or 0) > 1


class BurstUser(FastHttpUser):
    wait_time = constant(0)
    burst = -1
    """The burst this user last fired in (once a burst)."""

    @task
    def fire(self) -> None:
        self.burst = burst = _wait_for_burst(self.burst)
        started = time.time()
        response = None
        try:
            if METHOD == "POST":
                response = self.client.post(
                    PATH, data=BODY, headers={"Content-Type": "application/json"}
                )
            else:
                response = self.client.get(PATH)
        finally:
            _tally(burst, started, response)
            CLOCK.done(time.time())


@events.quitting.add_listener
def _write_bursts(**_kw) -> None:
    """bursts.csv: one row per burst, with the idle gap it followed and how many of its
    requests rode a reused connection (the keepalive lab's reuse and probes)."""
    rows = []
    for burst, (fired, requests, failed, lost, reused) in sorted(BURSTS.items()):
        gap = CLOCK.gap_before(burst)
        rows.append((
            burst, "" if gap is None else round(gap * 1000, 3),
            round(CLOCK.offset(burst) * 1000, 3) if burst else "", f"{fired:.6f}",
            int(requests), int(failed), int(lost), int(reused),
        ))  # fmt: skip
    header = ("burst", "gap_ms", "offset_ms", "fired_s", "requests", "status_502",
              "no_response", "reused")  # fmt: skip
    recorder.write_csv_beside_events("bursts.csv", header, rows)
