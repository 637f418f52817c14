"""Paced users: the keepalive guide's own experiment, the counterpart of
synchronized_bursts.py.

Each user POSTs like the keepalive lab, then waits between(0.9, 1.1) s on its own:
the same rate as a 32-user burst every second, but nothing lines the users up. nginx
reuses the most recently returned upstream connection first, so the connections that
idle past the api's 1 s keep-alive timeout are the ones nobody picks: they time out
unnoticed and the 502s all but disappear (labs/keepalive_502/guide.md).

Environment (all optional):
  LAB_METHOD   POST (default) or GET
  LAB_PATH     request path (default /work)

With the web UI, against `lab up keepalive-502 --variant broken` (PORT: its nginx):
  .venv/bin/python -m locust -f loadtests/paced_users.py --host http://127.0.0.1:PORT \\
      -u 32 -r 32 --web-host 127.0.0.1
"""

from __future__ import annotations

import os

from locust import FastHttpUser, between, task

from loadtests import recorder  # noqa: F401  (records every request for the engine)

METHOD = os.environ.get("LAB_METHOD", "POST").upper()
PATH = os.environ.get("LAB_PATH", "/work")
BODY = b'{"item": "widget", "quantity": 1}'


class PacedUser(FastHttpUser):
    wait_time = between(0.9, 1.1)

    @task
    def work(self) -> None:
        if METHOD == "POST":
            self.client.post(PATH, data=BODY, headers={"Content-Type": "application/json"})
        else:
            self.client.get(PATH)
