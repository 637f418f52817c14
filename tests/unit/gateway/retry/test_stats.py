"""AttemptStats (retry.stats)."""

from __future__ import annotations

import json

from services.gateway.retry.outcome import Outcome
from services.gateway.retry.stats import AttemptStats


def test_stats_snapshot_is_json_able() -> None:
    stats = AttemptStats()
    stats.record_attempt(Outcome(status=503), retry=False)
    stats.record_attempt(Outcome(error=TimeoutError()), retry=True)
    stats.record_attempt(Outcome(status=200), retry=True)
    snapshot = json.loads(json.dumps(stats.snapshot()))
    assert snapshot["attempts"] == 3
    assert snapshot["first_attempts"] == 1 and snapshot["retries"] == 2
    assert snapshot["by_outcome"] == {"200": 1, "503": 1, "timeout": 1}
