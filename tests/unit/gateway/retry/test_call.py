"""call_with_retries (retry.call): attempts, deadline, idempotency, cancellation, budget."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from services.gateway.retry.budget import RetryBudget
from services.gateway.retry.call import call_with_retries
from services.gateway.retry.outcome import Outcome
from services.gateway.retry.policy import RetryPolicy
from services.gateway.retry.stats import AttemptStats


class Backend:
    """A scripted send(): plays the given outcomes in order, repeating the last one."""

    def __init__(self, *script: Outcome | BaseException, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.timeouts: list[float] = []
        self.started: list[float] = []

    async def __call__(self, timeout_s: float) -> Outcome:
        self.timeouts.append(timeout_s)
        self.started.append(time.monotonic())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        step = self.script[min(len(self.timeouts), len(self.script)) - 1]
        if isinstance(step, BaseException):
            raise step
        return step

    @property
    def calls(self) -> int:
        return len(self.timeouts)


OK = Outcome(status=200, body=b"ok")
UNAVAILABLE = Outcome(status=503)
FAST = RetryPolicy(strategy="exponential", max_attempts=5, base_s=0.001, cap_s=0.01)


async def test_retries_until_success() -> None:
    backend = Backend(UNAVAILABLE, Outcome(error=aiohttp.ServerDisconnectedError()), OK)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert result.status == 200 and result.body == b"ok"
    assert result.attempts == 3 and backend.calls == 3
    assert stats.snapshot() == {
        "attempts": 3,
        "first_attempts": 1,
        "retries": 2,
        "by_outcome": {"200": 1, "503": 1, "disconnected": 1},
        "retries_denied_by_budget": 0,
        "gave_up_deadline": 0,
        "gave_up_max_attempts": 0,
        "not_retried_unsafe": 0,
    }


async def test_max_attempts_is_respected_and_last_outcome_returned() -> None:
    backend = Backend(Outcome(status=502), Outcome(status=504), UNAVAILABLE)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert backend.calls == 5
    assert result.status == 503 and result.attempts == 5
    assert stats.gave_up_max_attempts == 1
    assert stats.by_outcome == {"502": 1, "504": 1, "503": 3}


async def test_strategy_none_does_not_retry() -> None:
    backend = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(
        backend, RetryPolicy(strategy="none", max_attempts=5), method="GET"
    )
    assert backend.calls == 1 and result.status == 503


@pytest.mark.parametrize("status", [200, 400, 404, 500])
async def test_non_retryable_statuses_are_returned_at_once(status: int) -> None:
    backend = Backend(Outcome(status=status), OK)
    result = await call_with_retries(backend, FAST, method="GET")
    assert backend.calls == 1 and result.status == status and result.attempts == 1


async def test_exceptions_from_send_become_outcomes() -> None:
    refused = aiohttp.ClientConnectionError("refused")
    backend = Backend(refused)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert result.error is refused and result.status is None
    assert backend.calls == 5 and stats.by_outcome == {"connection_error": 5}

    bug = Backend(KeyError("bug"), OK)
    result = await call_with_retries(bug, FAST, method="GET")
    assert isinstance(result.error, KeyError) and bug.calls == 1


async def test_non_idempotent_requests_are_not_retried_without_a_key() -> None:
    stats = AttemptStats()
    post = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(post, FAST, method="POST", stats=stats)
    assert post.calls == 1 and result.status == 503
    assert stats.not_retried_unsafe == 1

    keyed = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(
        keyed, FAST, method="POST", headers={"Idempotency-Key": "k1"}, stats=stats
    )
    assert keyed.calls == 2 and result.status == 200


async def test_deadline_stops_retries_before_it_is_overrun() -> None:
    # Waits 0.01, 0.02, 0.04, 0.08 (total 0.15), then 0.16 would end past 0.25: stop.
    slow = RetryPolicy(
        strategy="exponential", max_attempts=100, base_s=0.01, cap_s=1.0, deadline_s=0.25
    )
    backend = Backend(UNAVAILABLE)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(backend, slow, method="GET", stats=stats)
    elapsed = time.monotonic() - started
    assert backend.calls == 5 and result.attempts == 5
    assert elapsed < 0.25
    assert stats.gave_up_deadline == 1 and stats.gave_up_max_attempts == 0


async def test_retry_after_past_the_deadline_gives_up_instead_of_waiting() -> None:
    patient = RetryPolicy(
        strategy="immediate", max_attempts=5, deadline_s=0.5, max_retry_after_s=30.0
    )
    backend = Backend(Outcome(status=503, headers={"Retry-After": "10"}), OK)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(backend, patient, method="GET", stats=stats)
    assert time.monotonic() - started < 0.1
    assert backend.calls == 1 and result.status == 503
    assert stats.gave_up_deadline == 1


async def test_retry_after_lengthens_the_real_sleep() -> None:
    backend = Backend(Outcome(status=429, headers={"Retry-After": "0.15"}), OK)
    policy_ = RetryPolicy(strategy="immediate", deadline_s=1.0)
    result = await call_with_retries(backend, policy_, method="GET")
    assert result.status == 200
    assert backend.started[1] - backend.started[0] >= 0.15


async def test_attempt_timeouts_never_exceed_the_time_left() -> None:
    policy_ = RetryPolicy(
        strategy="immediate", max_attempts=4, deadline_s=0.3, attempt_timeout_s=0.2
    )
    backend = Backend(UNAVAILABLE, delay_s=0.05)
    await call_with_retries(backend, policy_, method="GET")
    assert backend.calls == 4
    assert backend.timeouts[0] == 0.2
    for started, timeout in zip(backend.started, backend.timeouts, strict=True):
        left = 0.3 - (started - backend.started[0])
        assert timeout <= left + 0.005
    assert backend.timeouts[-1] < 0.2


async def test_a_hanging_send_is_cut_off_at_the_deadline() -> None:
    backend = Backend(OK, delay_s=10.0)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(
        backend, RetryPolicy(strategy="immediate", deadline_s=0.1), method="GET", stats=stats
    )
    assert time.monotonic() - started < 0.3
    assert isinstance(result.error, TimeoutError)
    assert stats.by_outcome == {"timeout": 1}


async def test_cancelled_error_from_send_propagates_without_retry() -> None:
    backend = Backend(asyncio.CancelledError(), OK)
    stats = AttemptStats()
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert backend.calls == 1
    assert stats.snapshot()["attempts"] == 0


async def test_cancelling_the_caller_during_backoff_propagates() -> None:
    backend = Backend(UNAVAILABLE)
    sleepy = RetryPolicy(strategy="exponential", base_s=5.0, cap_s=5.0, deadline_s=20.0)
    task = asyncio.create_task(call_with_retries(backend, sleepy, method="GET"))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.calls == 1


async def test_concurrent_calls_keep_their_own_attempt_counts() -> None:
    stats = AttemptStats()
    backends = [Backend(UNAVAILABLE, UNAVAILABLE, OK, delay_s=0.001 * i) for i in range(20)]
    results = await asyncio.gather(
        *(call_with_retries(b, FAST, method="GET", stats=stats) for b in backends)
    )
    assert [r.attempts for r in results] == [3] * 20
    assert [b.calls for b in backends] == [3] * 20
    assert stats.first_attempts == 20 and stats.retries == 40


async def test_budget_denial_stops_retries_in_a_call() -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_s=0, window_s=10, clock=lambda: 0.0)
    stats = AttemptStats()
    backend = Backend(UNAVAILABLE)
    # One request earns 0.5 retries: not enough for a single retry.
    result = await call_with_retries(backend, FAST, method="GET", budget=budget, stats=stats)
    assert backend.calls == 1 and result.status == 503
    assert stats.retries_denied_by_budget == 1
    # A second request brings the allowance to one retry.
    backend = Backend(UNAVAILABLE)
    await call_with_retries(backend, FAST, method="GET", budget=budget, stats=stats)
    assert backend.calls == 2
    assert stats.retries_denied_by_budget == 2
    assert budget.snapshot()["retries_in_window"] == 1


async def test_budget_is_not_spent_when_the_call_stops_anyway() -> None:
    budget = RetryBudget(ratio=0, min_retries_per_s=1, window_s=10, clock=lambda: 0.0)
    single = RetryPolicy(strategy="immediate", max_attempts=1)
    await call_with_retries(Backend(UNAVAILABLE), single, method="GET", budget=budget)
    await call_with_retries(Backend(UNAVAILABLE), FAST, method="POST", budget=budget)
    assert budget.snapshot()["retries_in_window"] == 0
