"""Steady users: each one requests, waits for the answer, thinks a while, and repeats.

The load of many independent clients (browsers, mobile apps): every user paces itself,
nothing lines them up. Each user starts after a random delay of up to one think time,
so users spawned together do not stay in step. Optionally each user retries a failed
request itself, which puts a second retry layer on top of the gateway's (the retries
lab's `layers` variant).

Every first attempt is recorded under the name "/work" (one per logical request); a
client-side retry is recorded as "/work (client retry)". When the engine records (it sets
LAB_EVENTS_FILE), each logical request also gets a row in `logical.csv` next to that file:
start, end, client attempts, api attempts (the sum of the gateway's X-Attempts answers)
and the final status.

Environment (all optional):
  LAB_METHOD              GET (default) or POST
  LAB_PATH                request path (default /work)
  LAB_THINK_MIN_S         shortest think time between requests (default 0.5)
  LAB_THINK_MAX_S         longest think time (default 1.0)
  LAB_CLIENT_ATTEMPTS     attempts per logical request, first included (default 1 = no retries)
  LAB_CLIENT_BACKOFF_S    wait before the first client retry, doubled after each (default 0.05)

By hand, with the web UI:
  locust -f loadtests/steady_users.py --host http://127.0.0.1:PORT -u 120 -r 120
"""

from __future__ import annotations

import os
import random
import time

import gevent
from locust import FastHttpUser, between, events, task

from loadtests import recorder  # records every request for the engine

METHOD = os.environ.get("LAB_METHOD", "GET").upper()
PATH = os.environ.get("LAB_PATH", "/work")
THINK_MIN_S = float(os.environ.get("LAB_THINK_MIN_S", "0.5"))
THINK_MAX_S = float(os.environ.get("LAB_THINK_MAX_S", "1.0"))
CLIENT_ATTEMPTS = int(os.environ.get("LAB_CLIENT_ATTEMPTS", "1"))
CLIENT_BACKOFF_S = float(os.environ.get("LAB_CLIENT_BACKOFF_S", "0.05"))
RETRYABLE = frozenset({429, 502, 503, 504})
RETRY_NAME = f"{PATH} (client retry)"
LOGICAL_FILE = "logical.csv"
_logical: list[tuple[float, float, int, int, int]] = []


class SteadyUser(FastHttpUser):
    wait_time = between(THINK_MIN_S, THINK_MAX_S)

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0, THINK_MAX_S))

    @task
    def work(self) -> None:
        backoff = CLIENT_BACKOFF_S
        started = time.time()
        api_attempts = 0
        for attempt in range(1, CLIENT_ATTEMPTS + 1):
            name = PATH if attempt == 1 else RETRY_NAME
            if METHOD == "POST":
                response = self.client.post(PATH, data=b"{}", name=name)
            else:
                response = self.client.get(PATH, name=name)
            api_attempts += _api_attempts(response)
            status = response.status_code or 0
            if (status not in RETRYABLE and status != 0) or attempt == CLIENT_ATTEMPTS:
                break
            gevent.sleep(backoff)
            backoff *= 2
        _logical.append((started, time.time(), attempt, api_attempts, status))


def _api_attempts(response) -> int:
    """Attempts the gateway made for this answer (X-Attempts); 1 if it did not say."""
    try:
        return int(response.headers.get("X-Attempts") or 1)
    except (AttributeError, TypeError, ValueError):
        return 1


@events.quitting.add_listener
def _write_logical(**_kw) -> None:
    header = ["start_s", "end_s", "client_attempts", "api_attempts", "status"]
    rows = ((f"{a:.6f}", f"{b:.6f}", c, n, s) for a, b, c, n, s in _logical)
    recorder.write_csv_beside_events(LOGICAL_FILE, header, rows)
