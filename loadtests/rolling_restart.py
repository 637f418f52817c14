"""Shoppers placing orders and readers fetching /work, for a rolling restart.

Shoppers are `loadtests/orders.py`'s (one intent per order, `intents.csv` for the
reconciliation); run them with LAB_CLIENT_ATTEMPTS=1 so that every order the proxy
fails is a failure the client sees, never hidden by a client retry. Readers GET /work
(an idempotent request nginx may retry on another server by itself). Half the users
are of each kind.

With LAB_ROLLOUT_BOOTS=N the load ends LAB_ROLLOUT_TAIL_S seconds after the N-th
distinct api process has answered (`X-Replica-Boot`, see loadtests/rollout.py): a
rolling restart of R replicas, N rounds each, is over at R x (N + 1) boots, however long
each restart took. Locust's --run-time is then only a cap.

Environment: orders.py's (LAB_CLIENT_ATTEMPTS, LAB_CLIENT_TIMEOUT_S, LAB_THINK_MIN_S,
LAB_THINK_MAX_S, ...); readers use the same timeout and think times. And:
  LAB_ROLLOUT_BOOTS    distinct api processes that end the rollout (default 0: off)
  LAB_ROLLOUT_TAIL_S   load kept on after that, in seconds (default 4)

By hand, with the web UI:
  locust -f loadtests/rolling_restart.py --host http://127.0.0.1:PORT -u 24 -r 24
"""

from __future__ import annotations

import logging
import os
import time

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

from loadtests.orders import CLIENT_TIMEOUT_S, THINK_MAX_S, THINK_MIN_S, Shopper
from loadtests.rollout import RolloutWatch

READ_PATH = "/work"
ROLLOUT_BOOTS = int(os.environ.get("LAB_ROLLOUT_BOOTS", "0"))
ROLLOUT_TAIL_S = float(os.environ.get("LAB_ROLLOUT_TAIL_S", "4"))

__all__ = ["Reader", "Shopper"]

_watch = RolloutWatch(ROLLOUT_BOOTS)
_environment: list[Environment] = []


class Reader(FastHttpUser):
    wait_time = between(THINK_MIN_S, THINK_MAX_S)
    network_timeout = CLIENT_TIMEOUT_S
    connection_timeout = CLIENT_TIMEOUT_S

    @task
    def read(self) -> None:
        self.client.get(READ_PATH)


@events.init.add_listener
def _keep_environment(environment: Environment, **_kw) -> None:
    _environment.append(environment)


@events.request.add_listener
def _watch_rollout(response=None, **_kw) -> None:  # noqa: ANN001 (a Locust response)
    if _watch.saw(getattr(response, "headers", None), time.time()):
        logging.getLogger(__name__).warning(
            "rollout over: %d api processes answered; stopping in %g s",
            len(_watch.boots), ROLLOUT_TAIL_S,
        )  # fmt: skip
        gevent.spawn_later(ROLLOUT_TAIL_S, _stop)


def _stop() -> None:
    for environment in _environment:
        if environment.runner is not None:
            environment.runner.quit()
