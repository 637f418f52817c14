"""Downstream: one dependency of the gateway and the resilience stack its calls go through.

Outermost first:

1. the per-request deadline (`RetryPolicy.deadline_s`) bounds everything below;
2. the bulkhead (optional): the downstream's own connection pool and a cap on its calls
   in flight, so one slow dependency cannot hold every connection and task of the gateway;
   a call over the cap is refused at once (503, Retry-After);
3. the circuit breaker (optional, services.gateway.breaker over pybreaker): after
   `fail_max` consecutive failures (timeouts, connection errors, 5xx; 4xx are neutral) it
   refuses calls at once (503, Retry-After) for `reset_timeout_s`, then lets one trial
   through; every transition is logged, counted and exported (breaker_state gauge);
4. `call_with_retries` (services.gateway.retry.call): a fresh tenacity `AsyncRetrying` per
   call, the downstream's `RetryPolicy`, an optional process-wide `RetryBudget`, and a
   per-attempt `ClientTimeout` (connect, read, total) clipped to the deadline. Retries sit
   inside the breaker, so the breaker judges whole calls and an open circuit is never
   retried against.

Without a bulkhead the downstreams share one pool (`pool="shared"`, services.gateway.pool)
or each gets a plain pool of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import aiohttp
import pybreaker

from services.common import metrics
from services.gateway import breaker as cb
from services.gateway.bulkhead import Bulkhead, BulkheadFullError
from services.gateway.config import DownstreamConfig
from services.gateway.deadline import DEADLINE_HEADER, DeadlineConfig, header_value
from services.gateway.hedge import Hedger
from services.gateway.pool import SharedPool, new_session
from services.gateway.retry.call import call_with_retries
from services.gateway.retry.outcome import Outcome, outcome_label
from services.gateway.retry.stats import AttemptStats

FORWARDED_HEADERS = ("Content-Type", "Idempotency-Key", "Accept", "X-Request-Id")
"""Request headers passed on to the downstream; the rest stay at the gateway."""


def breaker_outcome(outcome: Outcome) -> cb.Outcome:
    """How a call's final outcome counts for the breaker: no answer (timeout, connection
    error) and 5xx are failures of the dependency; 4xx say nothing about its health (the
    caller's mistake, or its own rate limit), so they are neutral."""
    if outcome.error is not None or (outcome.status or 0) >= 500:
        return cb.Outcome.FAILURE
    if (outcome.status or 0) >= 400:
        return cb.Outcome.NEUTRAL
    return cb.Outcome.SUCCESS


class _BreakerGauge(pybreaker.CircuitBreakerListener):
    """Keeps the breaker_state gauge of /metrics in step with every transition."""

    def __init__(self, service_metrics: metrics.ServiceMetrics, name: str) -> None:
        self._metrics = service_metrics
        self._name = name

    def state_change(self, cb_: pybreaker.CircuitBreaker, old_state, new_state) -> None:
        self._metrics.set_breaker_state(self._name, new_state.name)


class Downstream:
    """One dependency: its session and pool (own, shared or a bulkhead's), its breaker,
    policy, budget and counters."""

    def __init__(
        self,
        config: DownstreamConfig,
        rng: random.Random,
        service_metrics: metrics.ServiceMetrics | None = None,
        deadline: DeadlineConfig | None = None,
    ) -> None:
        self.config = config
        self.deadline = deadline or DeadlineConfig()
        self.rng = rng
        self.stats = AttemptStats()
        self.budget = config.budget.build() if config.budget else None
        self.calls: Counter[str] = Counter()
        """Final answer of every call, by outcome label ("200", "503", "timeout",
        "bulkhead_full", "breaker_open", ...)."""
        self.in_flight = 0
        self.peak_in_flight = 0
        self._metrics = service_metrics
        self._urls = itertools.cycle(config.urls)
        self._session: aiohttp.ClientSession | None = None
        self._owns_session = True
        self._shared: SharedPool | None = None
        self._client_timeout = config.timeouts.client_timeout()
        bulkhead = config.bulkhead_config()
        self.bulkhead = Bulkhead(bulkhead) if bulkhead else None
        self.hedger = Hedger(config.hedge) if config.hedge else None
        self.breaker: cb.AsyncCircuitBreaker | None = None
        if config.breaker is not None:
            listeners = [_BreakerGauge(service_metrics, config.name)] if service_metrics else []
            self.breaker = cb.AsyncCircuitBreaker(config.breaker, listeners=listeners)
            if service_metrics:
                service_metrics.set_breaker_state(config.name, self.breaker.state)

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self, shared: SharedPool | None = None) -> None:
        """Use the gateway's `shared` pool, or a pool of this downstream's own."""
        if shared is not None:
            self._shared, self._session, self._owns_session = shared, shared.session, False
        elif self.bulkhead is not None:
            await self.bulkhead.start()
            self._session = self.bulkhead.session
        else:
            self._session = new_session(self.config.max_connections)

    async def close(self) -> None:
        session, self._session = self._session, None
        if self.bulkhead is not None:
            await self.bulkhead.close()
        elif session is not None and self._owns_session:
            await session.close()

    async def call(
        self, method: str, headers: Mapping[str, str], body: bytes, budget_s: float | None = None
    ) -> Outcome:
        """One request through the stack: bulkhead, breaker, retries (module docstring).
        A refusal by the bulkhead or the breaker comes back as an Outcome whose error is
        the `BulkheadFullError` / `CircuitOpenError`. `budget_s` (deadline propagation,
        services.gateway.deadline) bounds the call and goes downstream with each attempt."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.bulkhead is None:
                outcome = await self._guarded(method, headers, body, budget_s)
            else:
                async with self.bulkhead.slot():
                    outcome = await self._guarded(method, headers, body, budget_s)
        except (BulkheadFullError, cb.CircuitOpenError) as refused:
            outcome = Outcome(error=refused, attempts=0)
            if self._metrics is not None:
                self._metrics.rejected.labels(self._metrics.service, _refusal(refused)).inc()
        finally:
            self.in_flight -= 1
        self.calls[call_label(outcome)] += 1
        return outcome

    async def _guarded(
        self, method: str, headers: Mapping[str, str], body: bytes, budget_s: float | None
    ) -> Outcome:
        if self.breaker is None:
            return await self._retried(method, headers, body, budget_s)
        return await self.breaker.call(
            self._retried, method, headers, body, budget_s, classify=breaker_outcome
        )

    async def _retried(
        self, method: str, headers: Mapping[str, str], body: bytes, budget_s: float | None
    ) -> Outcome:
        assert self._session is not None, "downstream not started"
        session = self._session
        forwarded = {k: headers[k] for k in FORWARDED_HEADERS if k in headers}
        policy = self.config.policy
        if budget_s is not None:
            policy = replace(policy, deadline_s=min(policy.deadline_s, budget_s))

        async def send(timeout_s: float) -> Outcome:
            if budget_s is not None:
                if self.deadline.too_little(timeout_s):
                    # Too little left for an answer to arrive in time: not sent.
                    raise TimeoutError("deadline budget too small for another attempt")
                forwarded[DEADLINE_HEADER] = header_value(self.deadline.downstream_s(timeout_s))
            first = next(self._urls)
            if self.hedger is None:
                return await copy(first)
            return await self.hedger.run(lambda n: copy(first if n == 0 else self._other(first)))

        async def copy(base_url: str) -> Outcome:
            url = base_url + self.config.path
            wait_s = self.config.timeouts.connect_s
            slot = self._shared.slot(wait_s) if self._shared else contextlib.nullcontext()
            async with (
                slot,
                session.request(
                    method,
                    url,
                    data=body or None,
                    headers=forwarded,
                    timeout=self._client_timeout,
                ) as response,
            ):
                payload = await response.read()
                return Outcome(status=response.status, headers=response.headers, body=payload)

        return await call_with_retries(
            send,
            policy,
            method=method,
            headers=headers,
            budget=self.budget,
            stats=self.stats,
            rng=self.rng,
        )

    def _other(self, url: str) -> str:
        """The replica after `url`: a hedge goes to another replica than its first copy."""
        urls = self.config.urls
        return urls[(urls.index(url) + 1) % len(urls)]

    def snapshot(self) -> dict[str, object]:
        timeouts = self.config.timeouts
        return {
            "urls": list(self.config.urls),
            "routes": list(self.config.routes),
            "policy": self.config.policy.as_dict(),
            "timeouts": {"connect_s": timeouts.connect_s, "read_s": timeouts.read_s},
            "pool": "own" if self._owns_session else "shared",
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "calls": dict(sorted(self.calls.items())),
            **self.stats.snapshot(),
            "budget": self.budget.snapshot() if self.budget else None,
            "bulkhead": self.bulkhead.snapshot() if self.bulkhead else None,
            "breaker": breaker_snapshot(self.breaker) if self.breaker else None,
            "hedge": self.hedger.snapshot() if self.hedger else None,
        }


def breaker_snapshot(breaker: cb.AsyncCircuitBreaker) -> dict[str, object]:
    """The adapter's snapshot plus its latest transitions on the wall clock (epoch
    seconds), so a lab can line them up with its clients' requests."""
    offset = time.time() - time.monotonic()
    return {
        **breaker.snapshot(),
        "reset_timeout_s": breaker.config.reset_timeout_s,
        "transition_log": [
            {"epoch_s": round(at + offset, 4), "from": old, "to": new}
            for at, old, new in breaker.transitions
        ],
    }


def _refusal(error: BaseException) -> str:
    return "bulkhead_full" if isinstance(error, BulkheadFullError) else "breaker_open"


def call_label(outcome: Outcome) -> str:
    """outcome_label, plus the two refusals that never reached the downstream."""
    if isinstance(outcome.error, BulkheadFullError | cb.CircuitOpenError):
        return _refusal(outcome.error)
    return outcome_label(outcome)
