"""Deadline propagation: each hop passes the time its caller will still wait downstream.

The header is `X-Timeout-Ms`: the caller's remaining budget in milliseconds, counted from
when the request arrives. Like gRPC's `grpc-timeout` it carries remaining time, not an
absolute time, so no two hops need agreeing clocks; each hop's own clock turns it into a
deadline (`arrival + budget`), and every attempt it makes downstream carries what is
left of it, less a margin. The api's worker pool reads the same header (services.api.workpool).

With propagation on, a hop:

- waits no longer than the smaller of the caller's budget and its own `--retry-deadline`;
- tells its downstream `margin` less than each attempt waits, so the answer (or the
  downstream's own 504) arrives before this hop stops waiting;
- fails fast (504, call not made) when that would leave the downstream less than
  `min_budget`: no useful answer could arrive in time;
- stops retrying at the deadline (services.gateway.retry.call) and sends no retry that
  would leave less than `min_budget` downstream.

Off (the default), the header is neither read nor forwarded: every hop keeps its own
fixed timeouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

DEADLINE_HEADER = "X-Timeout-Ms"


@dataclass(frozen=True)
class DeadlineConfig:
    propagate: bool = False
    margin_s: float = 0.0
    """Told downstream this much less than an attempt waits."""
    min_budget_s: float = 0.0
    """Less than this left for the downstream: the call is not made (504 at once)."""

    def __post_init__(self) -> None:
        for name in ("margin_s", "min_budget_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 <= value <= 60:
                raise ValueError(f"deadline {name} must be within 0..60 seconds; got {value!r}")

    def budget_s(self, headers: Mapping[str, str], own_deadline_s: float) -> float | None:
        """Seconds this hop may spend on the call (None: propagation off)."""
        if not self.propagate:
            return None
        caller = parse_budget_ms(headers.get(DEADLINE_HEADER))
        return own_deadline_s if caller is None else min(own_deadline_s, caller / 1000)

    def downstream_s(self, wait_s: float) -> float:
        """The budget passed on with an attempt that waits `wait_s`."""
        return wait_s - self.margin_s

    def too_little(self, wait_s: float) -> bool:
        """Whether an attempt that waits `wait_s` is not worth making."""
        return self.downstream_s(wait_s) <= self.min_budget_s


def parse_budget_ms(value: str | None) -> float | None:
    """The caller's budget from the header (None: absent or not a finite number >= 0)."""
    try:
        budget = float(value) if value else math.nan
    except ValueError:
        return None
    return budget if math.isfinite(budget) and budget >= 0 else None


def header_value(budget_s: float) -> str:
    """The header for a budget of `budget_s`: whole ms, never below 0."""
    return str(max(0, math.floor(budget_s * 1000)))
