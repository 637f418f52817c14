"""Two tenants share an api: `noisy` far above its rate limit, `quiet` well under its own.

Each tenant is identified by the X-API-Key header (what the limiters key on).
Every request is recorded under the tenant's name ("noisy" / "quiet"), so the
engine's requests.csv splits by tenant. The 429s are also inspected here: how many
carried Retry-After and a problem+json body (the recorder keeps only the status);
the counts go to `rate_limit_headers.json` next to LAB_EVENTS_FILE.

- noisy: LAB_NOISY_USERS users together offering LAB_NOISY_RPS requests/s, each on
  its own fixed schedule, the users' phases spread evenly over one period. (Locust's
  constant_throughput would pull every user back onto the same instant, and 12 users
  firing in one clump every 40 ms meet nginx's burst-0 limit_req only on every other
  clump: 12.6/s admitted of a 20/s limit, measured. Real clients are not in lockstep.)
- quiet: one user, one request 1/LAB_QUIET_RPS s after the previous response (never
  two in flight, never catching up after a stall: a well-behaved client). Causality
  then guarantees that any limiter sees its requests at least 1/LAB_QUIET_RPS apart,
  however the machine stalls, so a quiet tenant under its limit is never refused.

Environment (all optional):
  LAB_NOISY_USERS  default 12
  LAB_NOISY_RPS    default 300
  LAB_QUIET_RPS    default 10

By hand, with the web UI (users = LAB_NOISY_USERS + 1):
  locust -f loadtests/tenants.py --host http://127.0.0.1:PORT -u 13 -r 13
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, events, task

import loadtests.recorder  # noqa: F401  (records every request for the engine)

NOISY_USERS = int(os.environ.get("LAB_NOISY_USERS", "12"))
NOISY_RPS = float(os.environ.get("LAB_NOISY_RPS", "300"))
QUIET_RPS = float(os.environ.get("LAB_QUIET_RPS", "10"))
PATH = "/work"
HEADERS_FILE = "rate_limit_headers.json"
_noisy_index = itertools.count()
_EPOCH = time.time()
"""The shared grid: user i fires at _EPOCH + (k + i/N) * period, however late it spawned."""
_seen: defaultdict[str, Counter[str]] = defaultdict(Counter)


def _inspect(tenant: str, response) -> None:
    """Count what a 429 carried: Retry-After (a positive integer) and problem+json."""
    if response.status_code != 429:
        return
    seen = _seen[tenant]
    seen["429"] += 1
    retry_after = (response.headers.get("Retry-After") or "").strip()
    if retry_after.isdigit() and int(retry_after) >= 1:
        seen["retry_after"] += 1
    if (response.headers.get("Content-Type") or "").startswith("application/problem+json"):
        seen["problem_json"] += 1


class Tenant(FastHttpUser):
    abstract = True
    tenant = ""

    @task
    def work(self) -> None:
        with self.client.get(
            PATH, name=self.tenant, headers={"X-API-Key": self.tenant}, catch_response=True
        ) as response:
            _inspect(self.tenant, response)
            if response.status_code in (200, 429):
                response.success()  # a 429 is the limiter working, not a load-test failure


class Noisy(Tenant):
    fixed_count = NOISY_USERS
    tenant = "noisy"
    period_s = NOISY_USERS / NOISY_RPS

    def on_start(self) -> None:
        """User i fires at phase i/N of the shared period, then every period."""
        phase = (next(_noisy_index) % NOISY_USERS) * self.period_s / NOISY_USERS
        periods = math.ceil((time.time() - _EPOCH - phase) / self.period_s)
        self.next_at = _EPOCH + phase + max(0, periods) * self.period_s
        gevent.sleep(max(0.0, self.next_at - time.time()))

    def wait_time(self) -> float:
        self.next_at += self.period_s
        now = time.time()
        if self.next_at < now - self.period_s:  # far behind (a stall): skip, do not flood
            self.next_at = now
        return max(0.0, self.next_at - now)


class Quiet(Tenant):
    fixed_count = 1
    tenant = "quiet"
    wait_time = constant(1 / QUIET_RPS)


@events.quitting.add_listener
def _write_headers(**_kw) -> None:
    events_file = os.environ.get("LAB_EVENTS_FILE")
    if events_file:
        path = Path(events_file).with_name(HEADERS_FILE)
        path.write_text(json.dumps({t: dict(c) for t, c in sorted(_seen.items())}, indent=1))
