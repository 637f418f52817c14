"""Order reconciliation: what the clients meant to write against what a store holds.

Any lab whose load places orders (`loadtests/orders.py` records every order it meant to
place as an *intent* in `intents.csv`) and whose store lists them (the api's
`GET /orders?since=0`, fetched before the topology stops by `COLLECT_ORDERS` and saved as
`orders.json`) can ask, after the run, what the store did with those intents:

- duplicate: an extra order for an intent that already has one;
- lost: an intent the client finished with (confirmed, rejected or gave up) that has
  no order at all (an intent the end of the run cut off is counted apart, as pending);
- mismatch: an order no client intended, or a confirmation naming an order the
  store does not hold for that intent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.model.spec import Collect

INTENTS_FILE = "intents.csv"
ORDERS_FILE = "orders.json"
COLLECT_ORDERS = Collect("api", "/orders?since=0&limit=10000", ORDERS_FILE)
"""The store's contents, fetched before the topology stops (Lab.collect)."""


@dataclass(frozen=True)
class Intent:
    intent_id: str
    outcome: str
    """created | rejected | gave_up | pending"""
    order_id: str
    attempts: int


@dataclass(frozen=True)
class Reconciliation:
    intents: int
    finished: int
    pending: int
    orders: int
    duplicates: int
    """Orders beyond the first for an intent."""
    duplicated_intents: int
    lost: int
    confirmed_missing: int
    """Of the lost: the client was told 201 and the store has nothing."""
    mismatches: int
    truncated: bool

    @property
    def duplicate_pct(self) -> float:
        return round(100 * self.duplicates / self.finished, 2) if self.finished else 0.0


def read_intents(path: Path) -> list[Intent]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            Intent(row["intent_id"], row["outcome"], row["order_id"], int(row["attempts"]))
            for row in csv.DictReader(handle)
        ]


def read_orders(path: Path) -> tuple[list[Mapping[str, object]], bool]:
    if not path.is_file():
        return [], False
    listing = json.loads(path.read_text())
    return list(listing["orders"]), bool(listing.get("more"))


def reconcile(
    intents: Sequence[Intent], orders: Sequence[Mapping[str, object]], truncated: bool = False
) -> Reconciliation:
    per_intent: dict[str, list[str]] = {}
    for order in orders:
        per_intent.setdefault(str(order.get("intent_id", "")), []).append(str(order["id"]))
    known = {i.intent_id for i in intents}
    finished = [i for i in intents if i.outcome != "pending"]
    lost = [i for i in finished if not per_intent.get(i.intent_id)]
    stray = sum(len(ids) for intent_id, ids in per_intent.items() if intent_id not in known)
    wrong_confirmation = sum(
        1
        for i in intents
        if i.outcome == "created" and per_intent.get(i.intent_id) and i.order_id not in
        per_intent[i.intent_id]
    )  # fmt: skip
    extra = [len(per_intent.get(i.intent_id, [])) - 1 for i in intents]
    return Reconciliation(
        intents=len(intents),
        finished=len(finished),
        pending=len(intents) - len(finished),
        orders=len(orders),
        duplicates=sum(n for n in extra if n > 0),
        duplicated_intents=sum(1 for n in extra if n > 0),
        lost=len(lost),
        confirmed_missing=sum(1 for i in lost if i.outcome == "created"),
        mismatches=stray + wrong_confirmation,
        truncated=truncated,
    )


def reconcile_run(out_dir: Path) -> tuple[Reconciliation, list[Intent]]:
    """A variant's intents.csv against its collected orders.json."""
    intents = read_intents(out_dir / INTENTS_FILE)
    orders, truncated = read_orders(out_dir / ORDERS_FILE)
    return reconcile(intents, orders, truncated), intents
