"""AttemptStats: counters of attempts, retries and give-ups over every call that shares them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.gateway.retry.outcome import Outcome, outcome_label


@dataclass
class AttemptStats:
    """Counters over all calls that share this object (one per gateway, usually)."""

    by_outcome: Counter[str] = field(default_factory=Counter)
    """Every attempt, keyed by outcome_label: "200", "503", "timeout", ..."""
    first_attempts: int = 0
    retries: int = 0
    retries_denied_by_budget: int = 0
    gave_up_deadline: int = 0
    """Calls that stopped because the next attempt would not fit in the deadline."""
    gave_up_max_attempts: int = 0
    not_retried_unsafe: int = 0
    """Retryable failures left alone because the request was not idempotent."""

    def record_attempt(self, outcome: Outcome, *, retry: bool) -> None:
        self.by_outcome[outcome_label(outcome)] += 1
        if retry:
            self.retries += 1
        else:
            self.first_attempts += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "attempts": self.first_attempts + self.retries,
            "first_attempts": self.first_attempts,
            "retries": self.retries,
            "by_outcome": dict(sorted(self.by_outcome.items())),
            "retries_denied_by_budget": self.retries_denied_by_budget,
            "gave_up_deadline": self.gave_up_deadline,
            "gave_up_max_attempts": self.gave_up_max_attempts,
            "not_retried_unsafe": self.not_retried_unsafe,
        }
