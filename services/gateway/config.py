"""The gateway's settings: the whole gateway, each downstream, its timeouts and retry budget.

Plain frozen data, checked when built (`__post_init__`), whatever builds it: the command
line (services.gateway.__main__) only turns options into these, so a bad value is
rejected with the same message from any caller. The code that acts on them is elsewhere:
pool, downstream, app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from services.gateway import breaker as cb
from services.gateway.adaptive import AdaptiveConfig
from services.gateway.bulkhead import BulkheadConfig
from services.gateway.deadline import DeadlineConfig
from services.gateway.hedge import HedgeConfig
from services.gateway.retry.budget import RetryBudget, check_budget
from services.gateway.retry.policy import RetryPolicy

Pool = Literal["per-downstream", "shared"]
POOLS: tuple[Pool, ...] = ("per-downstream", "shared")


@dataclass(frozen=True)
class Timeouts:
    """aiohttp ClientTimeout parts for one attempt (None = no limit of that kind)."""

    connect_s: float | None = 1.0
    """Opening a connection, including the wait for a free slot in the pool."""
    read_s: float | None = None
    """Silence between two reads of the response (sock_read)."""

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for every attempt. A per-request timeout replaces the session's,
        so every part is given. No total: call_with_retries already bounds each attempt as a
        whole (services.gateway.retry.call), and a second timer per call would only cost."""
        return aiohttp.ClientTimeout(total=None, connect=self.connect_s, sock_read=self.read_s)


@dataclass(frozen=True)
class BudgetConfig:
    """A downstream's RetryBudget settings (see services.gateway.retry.budget)."""

    ratio: float = 0.1
    min_retries_per_s: float = 1.0
    window_s: float = 10.0

    def __post_init__(self) -> None:
        check_budget(self.ratio, self.min_retries_per_s, self.window_s)

    def build(self) -> RetryBudget:
        return RetryBudget(self.ratio, self.min_retries_per_s, self.window_s)


@dataclass(frozen=True)
class DownstreamConfig:
    name: str
    urls: tuple[str, ...]
    """Base URLs of the downstream's replicas; calls rotate over them."""
    path: str = "/work"
    """Path called on the downstream."""
    routes: tuple[str, ...] = ("/work",)
    """Gateway paths (GET and POST) that call this downstream."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetConfig | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 100
    """Size of this downstream's own connection pool (aiohttp's default is 100; 0 = no
    limit). Unused when the gateway's pool is shared."""
    max_in_flight: int = 0
    """Bulkhead: calls in flight to this downstream; the next one is refused at once
    (0 = no bulkhead). Needs a pool of its own."""
    breaker: cb.BreakerConfig | None = None
    """Circuit breaker for this downstream (None = none)."""
    hedge: HedgeConfig | None = None
    """Hedged requests to this downstream (services.gateway.hedge; None = none)."""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError(f"downstream {self.name}: at least one URL is needed")
        if self.max_connections < 0:
            raise ValueError(f"downstream {self.name}: max_connections must be >= 0")
        if self.max_in_flight < 0:
            raise ValueError(f"downstream {self.name}: max_in_flight must be >= 0")
        if (
            self.max_in_flight
            and self.max_connections
            and self.max_connections < self.max_in_flight
        ):
            # An admitted call would then queue for a connection, and the queueing would
            # count against its connect timeout (see services.gateway.bulkhead).
            raise ValueError(
                f"downstream {self.name}: max_connections ({self.max_connections}) must be "
                f">= max_in_flight ({self.max_in_flight})"
            )

    def bulkhead_config(self) -> BulkheadConfig | None:
        if not self.max_in_flight:
            return None
        return BulkheadConfig(
            max_connections=self.max_connections or self.max_in_flight,
            max_in_flight=self.max_in_flight,
            name=self.name,
            auto_decompress=False,
        )


@dataclass
class GatewayConfig:
    replica_id: str = "gateway-1"
    downstreams: tuple[DownstreamConfig, ...] = ()
    keepalive_timeout_s: float = 75.0
    seed: int | None = None
    pool: Pool = "per-downstream"
    """"shared": every downstream draws from one connection pool (a slow one can take all
    of it); "per-downstream": each has its own."""
    shared_max_connections: int = 100
    """Size of the shared pool (0 = no limit)."""
    deadline: DeadlineConfig = field(default_factory=DeadlineConfig)
    """Deadline propagation (services.gateway.deadline); off by default."""
    adaptive: AdaptiveConfig | None = None
    """Adaptive concurrency limit on the downstream routes (services.gateway.adaptive)."""

    def __post_init__(self) -> None:
        names = [d.name for d in self.downstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"downstream names must be unique: {names}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {self.pool!r}")
        if self.shared_max_connections < 0:
            raise ValueError("shared_max_connections must be >= 0")
        if self.pool == "shared":
            with_bulkhead = [d.name for d in self.downstreams if d.max_in_flight]
            if with_bulkhead:
                raise ValueError(
                    f"a bulkhead needs a pool of its own, not the shared one: "
                    f"{', '.join(with_bulkhead)} (use pool per-downstream)"
                )
