"""Closed-loop users that each keep one request in flight: GET /work?key=<key>.

Every user sends its next request as soon as the previous one answers (no think
time), so the number of users is the number of requests in flight: the load a
least-connections balancer needs to tell a slow replica from a fast one (with one
user in flight every replica has 0 connections at each pick, and least-conn is
round robin). Each request carries a key, for balancers that hash on it (`hash
$arg_key consistent`); the others ignore it. The users take the keys in turn from a
fixed set, so any LAB_KEYS requests in a row ask for every key once: a few seconds
of load show where each key lives, not where a random sample of them does. Every
request is recorded under the name "/work"; the engine's recorder notes which
replica answered (X-Replica), and nginx's access log keeps the key in the URI.

Environment (all optional):
  LAB_KEYS      how many distinct keys (default 500): key-0000 .. key-0499
  LAB_THINK_S   pause between a user's requests, seconds (default 0)

By hand, with the web UI:
  locust -f loadtests/keyed_users.py --host http://127.0.0.1:PORT -u 8 -r 8
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, task

import loadtests.recorder  # noqa: F401  (records every request for the engine)

KEYS = int(os.environ.get("LAB_KEYS", "500"))
THINK_S = float(os.environ.get("LAB_THINK_S", "0"))
NAME = "/work"
_turn = itertools.count()
"""Shared by every user (gevent runs them on one thread): the next key's index."""


def key_name(index: int) -> str:
    """The index-th key; the lab computes its own hashing over the same names."""
    return f"key-{index:04d}"


class KeyedUser(FastHttpUser):
    wait_time = constant(THINK_S)

    @task
    def work(self) -> None:
        self.client.get(f"/work?key={key_name(next(_turn) % KEYS)}", name=NAME)
