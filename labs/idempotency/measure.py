"""idempotency's measurements: each variant's intents reconciled with the store
(labs/engine/analysis/orders.py), the client's retries and the api's own counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.orders import reconcile_run
from labs.engine.model.spec import DeriveContext

RETRY_NAME = "/orders (client retry)"
"""How loadtests/orders.py names a retry (the first attempt is "/orders")."""
API_COUNTS = ("created", "replayed", "lost_responses", "in_flight_409", "key_reused_422")
"""The api's /admin/stats "orders" counters."""


@dataclass(frozen=True)
class IdempotencyNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    intents: int
    finished_intents: int
    pending_intents: int
    """Cut off by the end of the run mid-retry: neither lost nor confirmed."""
    orders_stored: int
    duplicates: int
    """Orders beyond the first for an intent."""
    duplicate_pct: float
    """duplicates per finished intent, in %."""
    duplicated_intents: int
    lost: int
    confirmed_missing: int
    mismatches: int
    listing_truncated: bool
    client_retries: int
    client_gave_up: int
    api_created: int
    api_replayed: int
    api_lost_responses: int
    api_in_flight_409: int
    api_key_reused_422: int

    @property
    def wrong(self) -> int:
        """Everything an exactly-once effect must keep at 0."""
        return self.duplicates + self.lost + self.mismatches + self.client_gave_up


def api_counts(result: VariantResult) -> Counter[str]:
    """The api's own counts, summed over its replicas (/admin/stats "orders")."""
    total: Counter[str] = Counter()
    for replica in result.services.get("api", []):
        section = replica.get("orders") if isinstance(replica, Mapping) else None
        if isinstance(section, Mapping):
            for name in API_COUNTS:
                value = section.get(name, 0)
                total[name] += int(value) if isinstance(value, int | float) else 0
    return total


def derive(ctx: DeriveContext) -> IdempotencyNumbers:
    r, intents = reconcile_run(ctx.out_dir)
    counts = api_counts(ctx.result)
    return IdempotencyNumbers(
        intents=r.intents,
        finished_intents=r.finished,
        pending_intents=r.pending,
        orders_stored=r.orders,
        duplicates=r.duplicates,
        duplicate_pct=r.duplicate_pct,
        duplicated_intents=r.duplicated_intents,
        lost=r.lost,
        confirmed_missing=r.confirmed_missing,
        mismatches=r.mismatches,
        listing_truncated=r.truncated,
        client_retries=sum(1 for q in ctx.requests if q.name == RETRY_NAME),
        client_gave_up=sum(1 for i in intents if i.outcome == "gave_up"),
        api_created=counts["created"],
        api_replayed=counts["replayed"],
        api_lost_responses=counts["lost_responses"],
        api_in_flight_409=counts["in_flight_409"],
        api_key_reused_422=counts["key_reused_422"],
    )
