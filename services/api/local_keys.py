"""Idempotency keys in one replica's memory: what NOT to do behind a load balancer.

The same state machine as the Redis store (in_flight with a lease -> done with a
ttl), but each replica only knows the keys it has seen itself. A retry that round
robin sends to another replica finds nothing and creates the order again; the
idempotency lab's `local-keys` variant measures how often. Kept because seeing it
fail is the quickest way to learn where a key store must live.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.api.order_store import Begin, Claim

MAX_KEYS = 100_000


@dataclass
class _Record:
    fingerprint: str
    token: str
    expires: float
    done: bool = False
    status: int = 0
    body: str = ""


class LocalKeys:
    def __init__(
        self, ttl_s: float, lease_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s <= 0 or lease_s <= 0:
            raise ValueError("key ttl and lease must be > 0")
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.clock = clock
        self.records: dict[str, _Record] = {}

    def begin(self, key: str, fingerprint: str) -> Begin:
        now = self.clock()
        record = self.records.get(key)
        if record is None or record.expires <= now:
            if len(self.records) >= MAX_KEYS:
                self._forget_expired(now)
            token = secrets.token_hex(8)
            self.records[key] = _Record(fingerprint, token, now + self.lease_s)
            return Begin("started", claim=Claim(key, token))
        if record.fingerprint != fingerprint:
            return Begin("mismatch")
        if not record.done:
            return Begin("in_flight")
        return Begin("done", status=record.status, body=record.body)

    def complete(self, claim: Claim, status: int, body: str) -> None:
        record = self.records.get(claim.key)
        if record is not None and record.token == claim.token and not record.done:
            record.done, record.status, record.body = True, status, body
            record.expires = self.clock() + self.ttl_s

    def release(self, claim: Claim) -> None:
        record = self.records.get(claim.key)
        if record is not None and record.token == claim.token and not record.done:
            del self.records[claim.key]

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, r in self.records.items() if r.expires <= now]:
            del self.records[key]
