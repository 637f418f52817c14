"""Steady users on several endpoints at once, a fixed number of users on each.

Each user requests its one endpoint, waits for the answer, thinks a while, and repeats:
many independent clients, nothing lines them up. With one group per endpoint, a slow
endpoint keeps its own users waiting while the others carry on, so whatever slows an
unrelated endpoint down happened on the server side (the circuit-breaker lab's cascade).
Every request is recorded under its path ("/checkout", "/catalog").

Environment:
  LAB_ENDPOINTS    path:users,... (default "/work:10"); Locust's -u must be the sum
  LAB_THINK_MIN_S  shortest think time between requests (default 0.5)
  LAB_THINK_MAX_S  longest think time (default 1.0)

By hand, with the web UI:
  LAB_ENDPOINTS=/checkout:40,/catalog:20 locust -f loadtests/endpoints.py \\
      --host http://127.0.0.1:PORT -u 60 -r 60
"""

from __future__ import annotations

import os
import random

import gevent
from locust import FastHttpUser, between, task

import loadtests.recorder  # noqa: F401  (records every request for the engine)

THINK_MIN_S = float(os.environ.get("LAB_THINK_MIN_S", "0.5"))
THINK_MAX_S = float(os.environ.get("LAB_THINK_MAX_S", "1.0"))


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """ "/a:40,/b:20" -> [("/a", 40), ("/b", 20)]."""
    endpoints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        path, _, users = item.rpartition(":")
        if not path.startswith("/") or not users.isdigit() or int(users) < 1:
            raise ValueError(f"LAB_ENDPOINTS: expected /path:users, got {item!r}")
        endpoints.append((path, int(users)))
    return endpoints


class EndpointUser(FastHttpUser):
    abstract = True
    wait_time = between(THINK_MIN_S, THINK_MAX_S)
    path = "/"

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0, THINK_MAX_S))

    @task
    def request(self) -> None:
        self.client.get(self.path, name=self.path)


# One concrete user class per endpoint, with a fixed number of users each (Locust finds
# the classes among the module's globals).
for _index, (_path, _users) in enumerate(
    parse_endpoints(os.environ.get("LAB_ENDPOINTS", "/work:10"))
):
    _name = f"EndpointUser{_index}"
    globals()[_name] = type(_name, (EndpointUser,), {"path": _path, "fixed_count": _users})
