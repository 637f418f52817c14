"""Shoppers placing orders and readers fetching /work, for a rolling restart.

Shoppers are `loadtests/orders.py`'s (one intent per order, `intents.csv` for the
reconciliation); run them with LAB_CLIENT_ATTEMPTS=1 so that every order the proxy
fails is a failure the client sees, never hidden by a client retry. Readers GET /work
(an idempotent request nginx may retry on another server by itself). Half the users
are of each kind.

Environment: orders.py's (LAB_CLIENT_ATTEMPTS, LAB_CLIENT_TIMEOUT_S, LAB_THINK_MIN_S,
LAB_THINK_MAX_S, ...); readers use the same timeout and think times.

By hand, with the web UI:
  locust -f loadtests/rolling_restart.py --host http://127.0.0.1:PORT -u 24 -r 24
"""

from __future__ import annotations

from locust import FastHttpUser, between, task

from loadtests.orders import CLIENT_TIMEOUT_S, THINK_MAX_S, THINK_MIN_S, Shopper

READ_PATH = "/work"

__all__ = ["Reader", "Shopper"]


class Reader(FastHttpUser):
    wait_time = between(THINK_MIN_S, THINK_MAX_S)
    network_timeout = CLIENT_TIMEOUT_S
    connection_timeout = CLIENT_TIMEOUT_S

    @task
    def read(self) -> None:
        self.client.get(READ_PATH)
