"""RetryPolicy: how one downstream's calls retry -- the strategy, how many attempts, how long.

The policy is plain, validated settings; the code that acts on them is elsewhere in this
package (waits for the backoff, call for the attempts and the deadline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

Strategy = Literal[
    "none", "immediate", "exponential", "full-jitter", "equal-jitter", "decorrelated-jitter"
]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True)
class RetryPolicy:
    """How one gateway call retries. Immutable; build it once from settings and share it."""

    strategy: Strategy = "full-jitter"
    """Backoff between attempts; "none" makes a single attempt whatever max_attempts says."""
    max_attempts: int = 3
    """Attempts in total, including the first one."""
    base_s: float = 0.1
    """Wait before the first retry; later waits grow from it."""
    cap_s: float = 2.0
    """Upper bound of any single backoff wait."""
    deadline_s: float = 5.0
    """Time budget for the whole call: every attempt and every sleep between attempts."""
    honour_retry_after: bool = True
    """Wait at least as long as a response's Retry-After header asks."""
    max_retry_after_s: float = 5.0
    """Longest Retry-After that is honoured; longer values are clamped to this."""
    attempt_timeout_s: float | None = None
    """Timeout of one attempt (always clipped to the time left); None = all the time left."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}"
            )
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be a whole number; got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be >= 1 (it counts the first attempt); got {self.max_attempts}"
            )
        for name in ("base_s", "cap_s", "deadline_s", "max_retry_after_s"):
            check_non_negative(name, getattr(self, name), "a number of seconds")
        if self.base_s <= 0:
            raise ValueError(f"base_s must be > 0; got {self.base_s}")
        if self.cap_s < self.base_s:
            raise ValueError(f"cap_s ({self.cap_s}) must be >= base_s ({self.base_s})")
        if self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0; got {self.deadline_s}")
        if not isinstance(self.honour_retry_after, bool):
            raise ValueError(
                f"honour_retry_after must be true or false; got {self.honour_retry_after!r}"
            )
        if self.attempt_timeout_s is not None:
            check_non_negative("attempt_timeout_s", self.attempt_timeout_s, "a number of seconds")
            if self.attempt_timeout_s <= 0:
                raise ValueError(f"attempt_timeout_s must be > 0; got {self.attempt_timeout_s}")

    @property
    def attempts_allowed(self) -> int:
        return 1 if self.strategy == "none" else self.max_attempts

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_non_negative(name: str, value: object, kind: str = "a number") -> None:
    """Raise ValueError unless `value` is a finite int or float >= 0 (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
