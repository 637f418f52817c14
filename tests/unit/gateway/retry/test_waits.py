"""The backoff strategies (retry.waits): each wait's distribution, and Retry-After on top."""

from __future__ import annotations

import random
import statistics

import pytest
from tenacity import RetryCallState

from services.gateway.retry.outcome import Outcome
from services.gateway.retry.policy import RetryPolicy
from services.gateway.retry.waits import make_wait

SAMPLES = 4000


def state(attempt: int, *, previous_sleep: float = 0.0, outcome: Outcome | None = None):
    """A tenacity retry state as it is when the wait after `attempt` is computed."""
    rs = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    rs.attempt_number = attempt
    rs.upcoming_sleep = previous_sleep
    rs.set_result(outcome if outcome is not None else Outcome(status=503))
    return rs


def policy(strategy: str = "exponential", **overrides) -> RetryPolicy:
    settings = {"base_s": 0.1, "cap_s": 2.0, "honour_retry_after": False} | overrides
    return RetryPolicy(strategy=strategy, **settings)


def samples(strategy: str, attempt: int, seed: int = 7, **overrides) -> list[float]:
    wait = make_wait(policy(strategy, **overrides), random.Random(seed))
    return [wait(state(attempt)) for _ in range(SAMPLES)]


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (30, 2.0), (5000, 2.0)],
)
def test_exponential_is_exact_and_first_retry_waits_base(attempt: int, expected: float) -> None:
    wait = make_wait(policy("exponential"), random.Random(0))
    assert wait(state(attempt)) == pytest.approx(expected)


@pytest.mark.parametrize("strategy", ["none", "immediate"])
def test_no_backoff_strategies_do_not_wait(strategy: str) -> None:
    assert set(samples(strategy, 3)) == {0.0}


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8])
def test_full_jitter_spans_zero_to_exponential(attempt: int) -> None:
    high = min(2.0, 0.1 * 2 ** (attempt - 1))
    waits = samples("full-jitter", attempt)
    assert all(0.0 <= w <= high for w in waits)
    assert statistics.fmean(waits) == pytest.approx(high / 2, rel=0.05)
    assert min(waits) < 0.02 * high and max(waits) > 0.98 * high


@pytest.mark.parametrize("attempt", [1, 2, 4, 8])
def test_equal_jitter_spans_half_to_full_exponential(attempt: int) -> None:
    temp = min(2.0, 0.1 * 2 ** (attempt - 1))
    waits = samples("equal-jitter", attempt)
    assert all(temp / 2 <= w <= temp for w in waits)
    assert statistics.fmean(waits) == pytest.approx(0.75 * temp, rel=0.03)
    assert min(waits) < 0.51 * temp and max(waits) > 0.99 * temp


@pytest.mark.parametrize("previous", [0.0, 0.1, 0.25, 0.6, 2.0])
def test_decorrelated_jitter_draws_between_base_and_three_times_previous(previous: float) -> None:
    wait = make_wait(policy("decorrelated-jitter"), random.Random(3))
    high = min(2.0, max(0.1, previous) * 3)
    waits = [wait(state(2, previous_sleep=previous)) for _ in range(SAMPLES)]
    assert all(0.1 <= w <= high for w in waits)
    assert max(waits) > 0.98 * high
    if high < 2.0:  # uncapped: a plain uniform draw
        assert statistics.fmean(waits) == pytest.approx((0.1 + high) / 2, rel=0.05)


def test_decorrelated_jitter_chain_stays_within_bounds() -> None:
    wait = make_wait(policy("decorrelated-jitter", cap_s=1.0), random.Random(11))
    previous = 0.0
    for attempt in range(1, 200):
        sleep = wait(state(attempt, previous_sleep=previous))
        assert 0.1 <= sleep <= min(1.0, max(0.1, previous) * 3)
        previous = sleep


@pytest.mark.parametrize("strategy", ["full-jitter", "equal-jitter", "decorrelated-jitter"])
def test_jitter_follows_the_injected_rng_not_the_global_one(strategy: str) -> None:
    random.seed(1)
    first = samples(strategy, 3, seed=42)[:20]
    random.seed(2)
    again = samples(strategy, 3, seed=42)[:20]
    other = samples(strategy, 3, seed=43)[:20]
    assert first == again
    assert first != other


# -- Retry-After on top of the backoff ------------------------------------------------


def throttled(retry_after: str) -> Outcome:
    return Outcome(status=503, headers={"Retry-After": retry_after})


def test_retry_after_lengthens_the_wait() -> None:
    wait = make_wait(policy("exponential", honour_retry_after=True, max_retry_after_s=10.0))
    assert wait(state(1, outcome=throttled("3"))) == 3.0
    assert wait(state(1, outcome=Outcome(status=503))) == pytest.approx(0.1)


def test_retry_after_never_shortens_the_backoff() -> None:
    wait = make_wait(policy("exponential", honour_retry_after=True))
    assert wait(state(5, outcome=throttled("0"))) == pytest.approx(1.6)


def test_retry_after_is_clamped_and_can_be_ignored() -> None:
    clamped = make_wait(policy("exponential", honour_retry_after=True, max_retry_after_s=0.5))
    assert clamped(state(1, outcome=throttled("3600"))) == 0.5
    ignored = make_wait(policy("exponential", honour_retry_after=False))
    assert ignored(state(1, outcome=throttled("3"))) == pytest.approx(0.1)
    garbage = make_wait(policy("exponential", honour_retry_after=True))
    assert garbage(state(1, outcome=throttled("later"))) == pytest.approx(0.1)
