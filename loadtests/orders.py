"""Shoppers placing orders, retrying when they cannot tell whether an order went through.

Each user places one order after another. Every order starts as an *intent* with a
client-side id (`intent_id`, sent in the body so the store can be reconciled with
what the clients meant to do). When an attempt times out, the connection fails, or
the answer is 409/429/502/503/504, the user retries the same order after a short
backoff, up to LAB_CLIENT_ATTEMPTS attempts. With LAB_IDEMPOTENCY_KEY=on every
intent gets one Idempotency-Key (a UUID), sent on every attempt of that intent.

The first attempt of each intent is recorded under the name "/orders", a retry as
"/orders (client retry)". When the engine records (it sets LAB_EVENTS_FILE), every
intent also gets a row in `intents.csv` next to that file: intent id, key, start,
end, attempts, the last status, the outcome (created: got 201; rejected: a final
4xx; gave_up: out of attempts; pending: the run ended first) and the order id the
client was told about.

Environment (all optional):
  LAB_IDEMPOTENCY_KEY      on | off (default off)
  LAB_CLIENT_ATTEMPTS      attempts per order, first included (default 8; 1 = never retry)
  LAB_CLIENT_TIMEOUT_S     how long one attempt may take before the client gives up on it
                           (default 1.0)
  LAB_CLIENT_BACKOFF_S     wait before the first retry, doubled after each (default 0.05)
  LAB_CLIENT_BACKOFF_CAP_S longest wait between retries (default 0.8)
  LAB_THINK_MIN_S / LAB_THINK_MAX_S  pause between orders (default 0.1 / 0.3)

By hand, with the web UI:
  locust -f loadtests/orders.py --host http://127.0.0.1:PORT -u 10 -r 10
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import astuple, dataclass

import gevent
from locust import FastHttpUser, between, events, task

from loadtests import recorder  # records every request for the engine

PATH = "/orders"
RETRY_NAME = f"{PATH} (client retry)"
SEND_KEY = os.environ.get("LAB_IDEMPOTENCY_KEY", "off").lower() == "on"
CLIENT_ATTEMPTS = int(os.environ.get("LAB_CLIENT_ATTEMPTS", "8"))
CLIENT_TIMEOUT_S = float(os.environ.get("LAB_CLIENT_TIMEOUT_S", "1.0"))
BACKOFF_S = float(os.environ.get("LAB_CLIENT_BACKOFF_S", "0.05"))
BACKOFF_CAP_S = float(os.environ.get("LAB_CLIENT_BACKOFF_CAP_S", "0.8"))
THINK_MIN_S = float(os.environ.get("LAB_THINK_MIN_S", "0.1"))
THINK_MAX_S = float(os.environ.get("LAB_THINK_MAX_S", "0.3"))
RETRYABLE = frozenset({0, 409, 429, 502, 503, 504})
"""0: timeout or connection error. Each of these may or may not have created the order."""
SKUS = ("apple", "pear", "plum", "fig", "kiwi")
INTENTS_FILE = "intents.csv"


@dataclass
class Intent:
    intent_id: str
    key: str
    start_s: float
    end_s: float = 0.0
    attempts: int = 0
    status: int = 0
    outcome: str = "pending"
    order_id: str = ""


_intents: list[Intent] = []


class Shopper(FastHttpUser):
    wait_time = between(THINK_MIN_S, THINK_MAX_S)
    network_timeout = CLIENT_TIMEOUT_S
    connection_timeout = CLIENT_TIMEOUT_S

    def on_start(self) -> None:
        self.customer = f"c-{uuid.uuid4().hex[:10]}"
        self.placed = 0
        gevent.sleep(random.uniform(0, THINK_MAX_S))

    @task
    def place_order(self) -> None:
        self.placed += 1
        intent = Intent(f"{self.customer}-{self.placed}", "", time.time())
        if SEND_KEY:
            intent.key = str(uuid.uuid4())
        _intents.append(intent)
        body = json.dumps(
            {
                "intent_id": intent.intent_id,
                "customer": self.customer,
                "items": [
                    {"sku": random.choice(SKUS), "qty": random.randint(1, 5)}
                    for _ in range(random.randint(1, 3))
                ],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if intent.key:
            headers["Idempotency-Key"] = intent.key
        backoff = BACKOFF_S
        for attempt in range(1, CLIENT_ATTEMPTS + 1):
            name = PATH if attempt == 1 else RETRY_NAME
            response = self.client.post(PATH, data=body, headers=headers, name=name)
            intent.attempts, intent.status = attempt, response.status_code or 0
            if intent.status not in RETRYABLE:
                break
            if attempt < CLIENT_ATTEMPTS:
                gevent.sleep(random.uniform(backoff / 2, backoff))
                backoff = min(BACKOFF_CAP_S, backoff * 2)
        intent.end_s = time.time()
        if intent.status == 201:
            intent.outcome, intent.order_id = "created", _order_id(response)
        else:
            intent.outcome = "gave_up" if intent.status in RETRYABLE else "rejected"


def _order_id(response) -> str:  # noqa: ANN001 (a Locust response)
    try:
        return str(json.loads(response.content)["id"])
    except (TypeError, ValueError, KeyError):
        return ""


@events.quitting.add_listener
def _write_intents(**_kw) -> None:
    header = ["intent_id", "key", "start_s", "end_s", "attempts", "status", "outcome", "order_id"]
    recorder.write_csv_beside_events(INTENTS_FILE, header, (astuple(i) for i in _intents))
