"""RetryBudget: a process-wide cap on retries, so an outage cannot turn into a retry storm."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from services.gateway.retry.policy import check_non_negative


def check_budget(ratio: float, min_retries_per_s: float, window_s: float) -> None:
    """Raise ValueError unless these make a valid budget (RetryBudget's fields)."""
    for name, value in (
        ("ratio", ratio),
        ("min_retries_per_s", min_retries_per_s),
        ("window_s", window_s),
    ):
        check_non_negative(name, value)
    if window_s == 0:
        raise ValueError("window_s must be > 0")


@dataclass
class RetryBudget:
    """Process-wide cap on retries: a share of recent requests, plus a small floor.

    The model of Finagle's RetryBudget and Linkerd's retry budget (Envoy's retry budget
    is the same idea applied to concurrent requests). Over a sliding window of
    `window_s`, a retry is granted only if, counting it,

        retries_in_window <= max(ratio * requests_in_window, min_retries_per_s * window_s)

    where requests are first attempts (record_request) and retries are the ones the
    budget granted (try_acquire). So retries add at most `ratio` extra load on top of the
    offered traffic, however many attempts each call's policy allows, and the floor
    keeps retries possible when traffic is too low for a ratio to mean anything. The
    budget refills by itself as new requests arrive and old retries leave the window.

    Unlike AsyncRetrying this is meant to be shared by every call of the gateway. It is
    not thread-safe, which is fine on a single event loop: no method awaits.
    """

    ratio: float = 0.2
    """Retries allowed per request in the window (0.2 = at most 20% extra load)."""
    min_retries_per_s: float = 10.0
    """Retries always allowed per second of window, whatever the traffic."""
    window_s: float = 10.0
    """How long requests and retries count towards the budget."""
    clock: Callable[[], float] = time.monotonic
    """Monotonic time source in seconds; inject a fake in tests."""
    _requests: deque[float] = field(default_factory=deque, init=False, repr=False)
    _retries: deque[float] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        check_budget(self.ratio, self.min_retries_per_s, self.window_s)

    def record_request(self) -> None:
        """Count a new logical request (its first attempt), which earns retry allowance."""
        now = self.clock()
        self._expire(now)
        self._requests.append(now)

    def try_acquire(self) -> bool:
        """Take one retry from the budget; False means the retry must not be made."""
        now = self.clock()
        self._expire(now)
        if len(self._retries) + 1 > self._allowance():
            return False
        self._retries.append(now)
        return True

    def snapshot(self) -> dict[str, float]:
        self._expire(self.clock())
        return {
            "requests_in_window": len(self._requests),
            "retries_in_window": len(self._retries),
            "retries_allowed_in_window": self._allowance(),
        }

    def _allowance(self) -> float:
        return max(self.ratio * len(self._requests), self.min_retries_per_s * self.window_s)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        for events in (self._requests, self._retries):
            while events and events[0] <= horizon:
                events.popleft()
