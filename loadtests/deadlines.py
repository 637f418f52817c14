"""Steady users on several endpoints, each request with an id and a time budget.

Like endpoints.py (a fixed number of users per endpoint, each waiting for its answer,
thinking, and repeating), plus what the deadlines lab matches against the api's work log:

- every request carries `X-Request-Id` (unique in the run), which the gateways pass on;
- with a budget, the client waits at most that long for an answer (then it gives up:
  the request ends with status 0) and tells the first hop so in `X-Timeout-Ms`, which
  only a gateway with deadline propagation reads.

Each request's id, path, start and end (epoch seconds) and status go to `calls.csv`
beside the engine's events file.

Environment:
  LAB_ENDPOINTS    path:users,... (default "/work:10"); Locust's -u must be the sum
  LAB_THINK_MIN_S  shortest think time between requests (default 0.5)
  LAB_THINK_MAX_S  longest think time (default 1.0)
  LAB_BUDGET_MS    the client's budget (default 0: no budget, it waits up to 600 s)

By hand, with the web UI:
  LAB_ENDPOINTS=/checkout:16,/catalog:8 LAB_BUDGET_MS=800 locust -f loadtests/deadlines.py \\
      --host http://127.0.0.1:PORT -u 24 -r 24
"""

from __future__ import annotations

import itertools
import os
import random
import time

import gevent
from locust import FastHttpUser, between, events, task

from loadtests.endpoints import parse_endpoints
from loadtests.recorder import write_csv_beside_events

THINK_MIN_S = float(os.environ.get("LAB_THINK_MIN_S", "0.5"))
THINK_MAX_S = float(os.environ.get("LAB_THINK_MAX_S", "1.0"))
BUDGET_MS = float(os.environ.get("LAB_BUDGET_MS", "0"))
NO_BUDGET_S = 600.0
CALLS_FILE = "calls.csv"
CALLS_HEADER = ("request_id", "path", "start_s", "end_s", "status")

_ids = itertools.count(1)
_run = f"{os.getpid():x}"
_calls: list[tuple[str, str, float, float, int]] = []


class BudgetUser(FastHttpUser):
    abstract = True
    wait_time = between(THINK_MIN_S, THINK_MAX_S)
    network_timeout = BUDGET_MS / 1000 if BUDGET_MS > 0 else NO_BUDGET_S
    connection_timeout = network_timeout
    path = "/"

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0, THINK_MAX_S))

    @task
    def request(self) -> None:
        request_id = f"{_run}-{next(_ids)}"
        headers = {"X-Request-Id": request_id}
        if BUDGET_MS > 0:
            headers["X-Timeout-Ms"] = f"{BUDGET_MS:.0f}"
        start = time.time()
        response = self.client.get(self.path, name=self.path, headers=headers)
        status = int(getattr(response, "status_code", 0) or 0)
        _calls.append((request_id, self.path, start, time.time(), status))


@events.quitting.add_listener
def _write(**_kw) -> None:
    rows = ((i, p, f"{s:.6f}", f"{e:.6f}", st) for i, p, s, e, st in _calls)
    write_csv_beside_events(CALLS_FILE, CALLS_HEADER, rows)


for _index, (_path, _users) in enumerate(
    parse_endpoints(os.environ.get("LAB_ENDPOINTS", "/work:10"))
):
    _name = f"BudgetUser{_index}"
    globals()[_name] = type(_name, (BudgetUser,), {"path": _path, "fixed_count": _users})
