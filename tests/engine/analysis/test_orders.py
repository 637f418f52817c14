"""Reconciliation of intended orders with stored ones (labs/engine/analysis/orders.py)."""

from __future__ import annotations

import json
from pathlib import Path

from labs.engine.analysis.orders import Intent, read_intents, read_orders, reconcile, reconcile_run


def order(order_id: str, intent_id: str) -> dict[str, object]:
    return {"id": order_id, "intent_id": intent_id}


def test_counts_duplicates_lost_and_mismatches():
    intents = [
        Intent("a", "created", "o1", 1),
        Intent("b", "created", "o2", 2),  # retried: two orders
        Intent("c", "created", "o4", 3),  # retried twice: three orders
        Intent("d", "gave_up", "", 8),  # nothing stored: lost
        Intent("e", "created", "o9", 1),  # told o9, store has nothing: lost, confirmed
        Intent("f", "pending", "", 1),  # cut off by the end of the run: not lost
        Intent("g", "created", "o7", 1),  # told o7, store has o8: mismatch
    ]
    orders = [
        order("o1", "a"),
        order("o2", "b"),
        order("o3", "b"),
        order("o4", "c"),
        order("o5", "c"),
        order("o6", "c"),
        order("o8", "g"),
        order("o10", "nobody"),  # no client meant this: mismatch
    ]
    r = reconcile(intents, orders)
    assert (r.intents, r.finished, r.pending, r.orders) == (7, 6, 1, 8)
    assert (r.duplicates, r.duplicated_intents) == (3, 2)
    assert (r.lost, r.confirmed_missing, r.mismatches) == (2, 1, 2)
    assert r.duplicate_pct == 50.0


def test_a_clean_run_reconciles_to_zero():
    intents = [Intent(f"i{n}", "created", f"o{n}", 1) for n in range(10)]
    r = reconcile(intents, [order(f"o{n}", f"i{n}") for n in range(10)])
    assert (r.duplicates, r.lost, r.mismatches, r.duplicate_pct) == (0, 0, 0, 0.0)


def test_missing_files_read_as_empty(tmp_path: Path):
    assert read_intents(tmp_path / "intents.csv") == []
    assert read_orders(tmp_path / "orders.json") == ([], False)
    (tmp_path / "orders.json").write_text(json.dumps({"orders": [order("o", "i")], "more": True}))
    assert read_orders(tmp_path / "orders.json") == ([order("o", "i")], True)


def test_a_run_folder_reconciles_its_intents_with_its_collected_orders(tmp_path: Path):
    (tmp_path / "intents.csv").write_text(
        "intent_id,outcome,order_id,attempts\na,created,o1,2\nb,pending,,1\n"
    )
    (tmp_path / "orders.json").write_text(
        json.dumps({"orders": [order("o1", "a"), order("o2", "a")], "more": False})
    )
    r, intents = reconcile_run(tmp_path)
    assert intents == [Intent("a", "created", "o1", 2), Intent("b", "pending", "", 1)]
    assert (r.finished, r.pending, r.duplicates, r.lost, r.truncated) == (1, 1, 1, 0, False)
