"""RetryBudget (retry.budget): allowance, sliding window, floor, validation."""

from __future__ import annotations

import pytest

from services.gateway.retry.budget import RetryBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_then_denies_as_failures_pile_up_and_recovers() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(20):
        budget.record_request()
    granted = [budget.try_acquire() for _ in range(6)]
    assert granted == [True, True, True, True, False, False]

    # Fresh traffic (successful requests) earns new allowance: 5 requests -> 1 retry.
    for _ in range(5):
        budget.record_request()
    assert budget.try_acquire() is True
    assert budget.try_acquire() is False

    # Everything ages out of the window; new requests start a fresh budget.
    clock.now += 10.5
    assert budget.snapshot()["requests_in_window"] == 0
    assert budget.try_acquire() is False
    for _ in range(10):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]


def test_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(4):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]
    clock.now += 6
    budget.record_request()
    budget.record_request()
    assert [budget.try_acquire() for _ in range(2)] == [True, False]  # 6 requests: 3 retries
    clock.now += 4.5  # the first 4 requests and 2 retries leave the window
    assert budget.snapshot() == {
        "requests_in_window": 2,
        "retries_in_window": 1,
        "retries_allowed_in_window": 1.0,
    }
    assert budget.try_acquire() is False


def test_budget_floor_allows_retries_at_low_traffic() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_s=1, window_s=5, clock=clock)
    assert [budget.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 5
    assert budget.try_acquire() is True


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ratio": -0.1}, "ratio must be a finite number >= 0"),
        ({"min_retries_per_s": float("nan")}, "min_retries_per_s must be a finite number"),
        ({"window_s": 0}, "window_s must be > 0"),
        ({"ratio": "0.2"}, "ratio must be a number"),
    ],
)
def test_budget_validation(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudget(**settings)  # type: ignore[arg-type]
