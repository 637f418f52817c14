"""call_with_retries: one logical request across its attempts, until success or a stop.

Each call drives a fresh `tenacity.AsyncRetrying`. Retrying objects keep their attempt
state in a `threading.local`, and every asyncio task runs on the same thread, so one
object shared by concurrent requests would mix up their attempt counts.

Three things bound the retries of a call:

* `RetryPolicy.max_attempts` -- attempts in total, the first one included;
* `RetryPolicy.deadline_s` -- wall time for all attempts and the sleeps between them;
* an optional, process-wide `RetryBudget` -- retries as a share of recent traffic, so a
  backend outage cannot turn into a retry storm that multiplies its load.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState
from tenacity.retry import retry_if_result
from tenacity.stop import stop_after_attempt, stop_base

from services.gateway.retry.budget import RetryBudget
from services.gateway.retry.outcome import Outcome
from services.gateway.retry.policy import RetryPolicy
from services.gateway.retry.retryable import is_retryable, may_retry
from services.gateway.retry.stats import AttemptStats
from services.gateway.retry.waits import make_wait

Send = Callable[[float], Awaitable[Outcome]]
"""Performs one attempt within the given timeout (seconds) and reports its Outcome."""


class _Call:
    """One logical request across its attempts: the deadline clock and the last outcome."""

    def __init__(
        self, send: Send, policy: RetryPolicy, *, idempotent: bool, stats: AttemptStats
    ) -> None:
        self.send = send
        self.policy = policy
        self.idempotent = idempotent
        self.stats = stats
        self.deadline = time.monotonic() + policy.deadline_s
        self.attempts = 0
        self.last: Outcome | None = None
        self.out_of_time = False

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def attempt(self) -> Outcome:
        remaining = self.remaining()
        if self.last is not None and remaining <= 0:
            # The backoff sleep overran the deadline: keep the last answer, do not send.
            self.out_of_time = True
            self.stats.gave_up_deadline += 1
            return self.last
        timeout = remaining
        if self.policy.attempt_timeout_s is not None:
            timeout = min(timeout, self.policy.attempt_timeout_s)
        self.attempts += 1
        try:
            # Enforced here too, so a send that ignores its timeout cannot overrun the deadline.
            async with asyncio.timeout(timeout):
                outcome = await self.send(timeout)
        except Exception as exc:  # CancelledError is a BaseException and propagates
            outcome = Outcome(error=exc)
        outcome = replace(outcome, attempts=self.attempts)
        self.stats.record_attempt(outcome, retry=self.attempts > 1)
        self.last = outcome
        return outcome

    def should_retry(self, outcome: Outcome) -> bool:
        if self.out_of_time or not is_retryable(outcome):
            return False
        if not self.idempotent:
            self.stats.not_retried_unsafe += 1
            return False
        return True


class _Stop(stop_base):
    """stop_after_attempt | stop_before_delay | budget, checked in that order.

    tenacity computes the wait before the stop, so stop_before_delay sees the coming
    sleep (Retry-After included) and gives up when the next attempt would start past the
    deadline; stop_after_delay would only notice after overrunning it. The budget comes
    last so a retry that is not going to happen anyway does not spend it.
    """

    def __init__(self, call: _Call, budget: RetryBudget | None) -> None:
        self.after_attempts = stop_after_attempt(call.policy.attempts_allowed)
        self.call = call
        self.budget = budget
        self.stats = call.stats

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.after_attempts(retry_state):
            self.stats.gave_up_max_attempts += 1
            return True
        # stop_before_delay on the call's own clock: tenacity's starts after the first
        # attempt (see call_with_retries).
        if (retry_state.upcoming_sleep or 0.0) >= self.call.remaining():
            self.stats.gave_up_deadline += 1
            return True
        if self.budget is not None and not self.budget.try_acquire():
            self.stats.retries_denied_by_budget += 1
            return True
        return False


def _last_outcome(retry_state: RetryCallState) -> Outcome:
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


async def call_with_retries(
    send: Send,
    policy: RetryPolicy,
    *,
    method: str,
    headers: Mapping[str, str] | None = None,
    budget: RetryBudget | None = None,
    stats: AttemptStats | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """Run `send` until it succeeds, fails for good, or the policy says stop.

    `send(timeout_s)` makes one attempt and must finish within timeout_s, which is never
    more than the time left before the deadline. Exceptions it raises are captured into
    the Outcome. Returns the last Outcome, with `attempts` set; retryable failures are
    returned, not raised, and the caller maps them to its own 502/503/504.
    asyncio.CancelledError is never retried: it propagates as soon as it happens.
    """
    stats = stats if stats is not None else AttemptStats()
    call = _Call(send, policy, idempotent=may_retry(method, headers), stats=stats)
    if budget is not None:
        budget.record_request()
    # The happy path never builds the retry loop: most calls succeed at once, and
    # tenacity's per-attempt bookkeeping costs the gateway ~5 % of its throughput.
    first = await call.attempt()
    if not call.should_retry(first):
        return first
    replayed = [first]

    async def attempt() -> Outcome:
        """Attempt 1 is the one already made; tenacity decides about the rest."""
        return replayed.pop() if replayed else await call.attempt()

    retrying = AsyncRetrying(
        stop=_Stop(call, budget),
        wait=make_wait(policy, rng),
        retry=retry_if_result(call.should_retry),
        retry_error_callback=_last_outcome,
    )
    return await retrying(attempt)
