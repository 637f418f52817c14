"""RetryPolicy (retry.policy): validation, and "none" as a single attempt."""

from __future__ import annotations

import pytest

from services.gateway.retry.policy import RetryPolicy


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "linear"}, "strategy must be one of"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"max_attempts": True}, "max_attempts must be a whole number"),
        ({"base_s": 0}, "base_s must be > 0"),
        ({"base_s": -1}, "base_s must be a finite number >= 0"),
        ({"cap_s": float("nan")}, "cap_s must be a finite number"),
        ({"base_s": 1.0, "cap_s": 0.5}, r"cap_s \(0.5\) must be >= base_s \(1.0\)"),
        ({"deadline_s": 0}, "deadline_s must be > 0"),
        ({"deadline_s": float("inf")}, "deadline_s must be a finite number"),
        ({"max_retry_after_s": "5"}, "max_retry_after_s must be a number"),
        ({"honour_retry_after": "yes"}, "honour_retry_after must be true or false"),
        ({"attempt_timeout_s": 0}, "attempt_timeout_s must be > 0"),
    ],
)
def test_policy_validation(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**settings)  # type: ignore[arg-type]


def test_strategy_none_makes_a_single_attempt() -> None:
    assert RetryPolicy(strategy="none", max_attempts=5).attempts_allowed == 1
    assert RetryPolicy(strategy="immediate", max_attempts=5).attempts_allowed == 5
