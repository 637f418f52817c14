"""The backoff strategies as tenacity waits: make_wait turns a RetryPolicy into one."""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import (
    WaitBaseT,
    wait_base,
    wait_exponential,
    wait_none,
    wait_random_exponential,
)

from services.gateway.retry.outcome import Outcome
from services.gateway.retry.policy import RetryPolicy


class FullJitterWait(wait_random_exponential):
    """uniform(0, min(cap, base * 2**n)): tenacity's wait_random_exponential, seedable.

    tenacity draws from the global `random` module; this draws from the given rng.
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        super().__init__(multiplier=base_s, max=cap_s)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        # The window is plain exponential backoff; only the draw differs from tenacity's.
        high = wait_exponential.__call__(self, retry_state)
        return self.rng.uniform(self.min, high)


class DecorrelatedJitterWait(wait_base):
    """min(cap, uniform(base, 3 * previous sleep)), the first previous sleep being base.

    Not in tenacity. The previous sleep is read from retry_state.upcoming_sleep, which
    tenacity leaves at the last sleep it took, so the wait holds no per-call state and one
    instance may serve any number of calls. That last sleep includes any Retry-After
    stretch, so the backoff carries on from where the server pushed it.
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        previous = max(self.base_s, retry_state.upcoming_sleep)
        return min(self.cap_s, self.rng.uniform(self.base_s, previous * 3))


class RetryAfterWait(wait_base):
    """Wait max(backoff, Retry-After), with Retry-After clamped to max_retry_after_s.

    The backoff still applies when the server asks for less, so a fleet of clients told
    "Retry-After: 0" does not come back in lockstep. A wait that would overrun the
    deadline is not shortened: the deadline stop gives up instead.
    """

    def __init__(self, backoff: WaitBaseT, max_retry_after_s: float) -> None:
        self.backoff = backoff
        self.max_retry_after_s = max_retry_after_s

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.backoff(retry_state)
        attempt = retry_state.outcome
        if attempt is None or attempt.failed:
            return wait
        outcome = attempt.result()
        retry_after = outcome.retry_after_s() if isinstance(outcome, Outcome) else None
        if retry_after is None:
            return wait
        return max(wait, min(retry_after, self.max_retry_after_s))


_default_rng = random.Random()


def make_wait(policy: RetryPolicy, rng: random.Random | None = None) -> WaitBaseT:
    """The tenacity wait for a policy; n counts retries already made (0 before the first).

    ====================  ==============================================  ===================
    strategy              tenacity wait                                   sleep before retry
    ====================  ==============================================  ===================
    none                  wait_none() (and a single attempt)              --
    immediate             wait_none()                                     0
    exponential           wait_exponential(multiplier=base, max=cap)      min(cap, base*2^n)
    full-jitter           wait_random_exponential(multiplier=base,        uniform(0, t),
                          max=cap), as FullJitterWait                     t = min(cap,
                                                                          base*2^n)
    equal-jitter          wait_exponential(base/2, max=cap/2)             t/2 +
                          + wait_random_exponential(base/2, max=cap/2)    uniform(0, t/2)
    decorrelated-jitter   DecorrelatedJitterWait (custom wait_base)       min(cap, uniform(
                                                                          base, 3*prev))
    ====================  ==============================================  ===================

    tenacity's wait_exponential uses exponent attempt_number - 1, so the wait after the
    first attempt is exactly base. Not to be confused with tenacity's
    wait_exponential_jitter, which adds uniform(0, jitter) on top of the exponential
    wait instead of drawing the whole wait at random. With honour_retry_after the
    backoff is wrapped in RetryAfterWait. The random draws come from rng (seed it in
    tests), never from the global random module.
    """
    rng = rng or _default_rng
    backoff: WaitBaseT
    if policy.strategy in ("none", "immediate"):
        backoff = wait_none()
    elif policy.strategy == "exponential":
        backoff = wait_exponential(multiplier=policy.base_s, max=policy.cap_s)
    elif policy.strategy == "full-jitter":
        backoff = FullJitterWait(policy.base_s, policy.cap_s, rng)
    elif policy.strategy == "equal-jitter":
        half_base, half_cap = policy.base_s / 2, policy.cap_s / 2
        backoff = wait_exponential(multiplier=half_base, max=half_cap) + FullJitterWait(
            half_base, half_cap, rng
        )
    else:
        backoff = DecorrelatedJitterWait(policy.base_s, policy.cap_s, rng)
    if policy.honour_retry_after:
        return RetryAfterWait(backoff, policy.max_retry_after_s)
    return backoff
