"""What an open-loop client decides before it sends (no Locust import, so it can be
tested without gevent's monkey-patching): when the next request arrives, whether a
failed attempt may be retried, and whether to send at all.

- `Arrivals`: a Poisson process, exponential gaps at a fixed rate from a seeded RNG.
- `RetryBudget`: gRPC's retry throttling (proposal A6): a bucket of `max_tokens`
  (10); each failed attempt takes a token, each success gives `token_ratio` (0.1)
  back; a retry is allowed only while more than half the bucket is left. Under a
  sustained failure the client sends about one attempt per request.
- `AdaptiveThrottle`: client-side throttling from Google's SRE book ("Handling
  Overload"): over a sliding window the client counts its requests and the ones the
  backend accepted, and rejects a new one locally with probability
  max(0, (requests - K * accepts) / (requests + 1)). With K = 2 the backend sees at
  most about twice what it accepts, whatever the callers want.

Time is passed in (`now`: seconds on any clock), so the arithmetic is testable
without sleeping.
"""

from __future__ import annotations

import random
from collections import deque


class Arrivals:
    """Intended send times of a Poisson process of `rate` per second from `start`."""

    def __init__(self, rate: float, start: float, seed: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self._rng = random.Random(seed)
        self._next = start

    def next(self) -> float:
        self._next += self._rng.expovariate(self.rate)
        return self._next


class RetryBudget:
    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio
        self.tokens = max_tokens
        self.refused = 0
        """Retries the budget did not allow."""

    def record(self, success: bool) -> None:
        if success:
            self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)
        else:
            self.tokens = max(0.0, self.tokens - 1)

    def allows_retry(self) -> bool:
        allowed = self.tokens > self.max_tokens / 2
        self.refused += not allowed
        return allowed


class AdaptiveThrottle:
    def __init__(self, k: float = 2.0, window_s: float = 2.0, seed: int | None = None) -> None:
        if k < 1 or window_s <= 0:
            raise ValueError("k must be >= 1 and window_s > 0")
        self.k = k
        self.window_s = window_s
        self._rng = random.Random(seed)
        self._requests: deque[float] = deque()
        self._accepts: deque[float] = deque()
        self.rejected = 0
        """Requests rejected locally (never sent)."""

    def _trim(self, now: float) -> None:
        for times in (self._requests, self._accepts):
            while times and times[0] <= now - self.window_s:
                times.popleft()

    def reject_probability(self, now: float) -> float:
        self._trim(now)
        requests, accepts = len(self._requests), len(self._accepts)
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def admit(self, now: float) -> bool:
        """Whether to send a request now; a request rejected locally still counts."""
        rejected = self._rng.random() < self.reject_probability(now)
        self._requests.append(now)
        self.rejected += rejected
        return not rejected

    def accepted(self, now: float) -> None:
        """The backend accepted a request sent through `admit` (it answered, in time,
        with anything but an overload refusal)."""
        self._accepts.append(now)
