"""An asyncio adapter over pybreaker's circuit-breaker state machine.

pybreaker 1.4.1 is synchronous: ``call_async`` is Tornado-only, and decorating an ``async def``
records a success as soon as the coroutine object is created, before any of it runs (upstream
issue #7). Rather than write another breaker, this adapter keeps pybreaker's storage, state
objects, listeners and open/half-open/closed transitions, and only owns what pybreaker cannot do
across an ``await``:

- Admission. pybreaker lets every call through while half-open; a recovering dependency would
  then take the whole backlog at once. Here at most ``half_open_max_calls`` trials run
  concurrently, and extra calls are rejected exactly like calls on an open circuit.
- Classification. pybreaker counts excluded exceptions as successes, so a stream of caller errors
  (4xx) resets the consecutive-failure count and can close a half-open circuit. Here they are
  neutral: they neither reset the count nor decide a trial. Returned values can be classified
  too, so a 503 response trips the breaker without being turned into an exception.
- Cancellation. ``asyncio.CancelledError`` says nothing about the dependency's health (the
  caller gave up), so it is neutral and always propagates. pybreaker would count it as a failure.
- Time. pybreaker keeps ``opened_at`` as a wall-clock ``datetime`` (the Redis storage truncates
  it to whole seconds). The reset timeout here runs on an injectable monotonic clock, so it is
  precise below a second, immune to wall-clock steps, and testable without sleeping.
- Stale outcomes. A call admitted before a transition (say, still running when the circuit
  opened) finishes in a state it was not admitted under; its outcome is counted but does not
  drive the state machine, so a slow pre-outage success cannot close a half-open circuit.

One instance belongs to one event loop; admission and recording never ``await``, so they are
atomic with respect to other tasks without locks.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeAlias, TypeVar

import pybreaker

__all__ = [
    "AsyncCircuitBreaker",
    "BreakerConfig",
    "BreakerStats",
    "CircuitOpenError",
    "FailedResult",
    "Outcome",
    "STATE_VALUES",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Exclusion: TypeAlias = type[BaseException] | Callable[[BaseException], bool]

CLOSED: Final = pybreaker.STATE_CLOSED
HALF_OPEN: Final = pybreaker.STATE_HALF_OPEN
OPEN: Final = pybreaker.STATE_OPEN

STATE_VALUES: Final[dict[str, int]] = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
"""Numeric state for a gauge: ordered by how much traffic the breaker refuses."""

TRANSITIONS_KEPT: Final = 256


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    """Says nothing about the dependency's health: no counter moves, no trial is decided."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    name: str
    fail_max: int = 5
    """Consecutive failures that open a closed circuit."""
    reset_timeout_s: float = 30.0
    """How long the circuit stays open before a half-open trial is allowed."""
    half_open_max_calls: int = 1
    """Concurrent trial calls while half-open; the rest are rejected as if open."""
    success_threshold: int = 1
    """Successful trials needed to close a half-open circuit (pybreaker's own setting)."""
    exclude: tuple[Exclusion, ...] = ()
    """Exception types or predicates for raised exceptions that are neutral, e.g. 4xx errors."""

    def __post_init__(self) -> None:
        if self.fail_max < 1:
            raise ValueError("fail_max must be >= 1")
        if self.reset_timeout_s < 0:
            raise ValueError("reset_timeout_s must be >= 0")
        if self.half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be >= 1")
        if self.success_threshold < 1:
            raise ValueError("success_threshold must be >= 1")


class CircuitOpenError(Exception):
    """The breaker refused the call without running it.

    ``retry_after_s`` is the time until a trial may be admitted. While half-open with every trial
    slot busy the real wait depends on the running trial, so it is the reset timeout: what a
    caller would wait if that trial fails.
    """

    def __init__(self, name: str, state: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name!r} is {state}; retry after {retry_after_s:.3f}s")
        self.name = name
        self.state = state
        self.retry_after_s = retry_after_s


class FailedResult(Exception):
    """Stands in for a returned value classified as a failure, so that pybreaker's failure path
    and its listeners receive an exception. Never raised to the caller."""

    def __init__(self, result: object) -> None:
        super().__init__(result)
        self.result = result


@dataclass(slots=True)
class BreakerStats:
    admitted: int = 0
    successes: int = 0
    failures: int = 0
    neutral: int = 0
    stale: int = 0
    """Outcomes of calls admitted before the latest transition; counted, not fed to pybreaker."""
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class _Ticket:
    epoch: int
    trial: bool


class AsyncCircuitBreaker:
    """Guards calls to one dependency: ``await breaker.call(fn, *args, **kwargs)``."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[pybreaker.CircuitBreakerListener] = (),
    ) -> None:
        self.config = config
        self.stats = BreakerStats()
        self.transitions: deque[tuple[float, str, str]] = deque(maxlen=TRANSITIONS_KEPT)
        """Latest transitions as ``(clock time, from, to)``, oldest first."""
        self.transition_counts: Counter[str] = Counter()
        """All transitions so far, keyed ``"closed->open"`` etc."""
        self._clock = clock
        self._opened_at: float | None = None
        self._epoch = 0
        self._trials = 0
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=config.fail_max,
            reset_timeout=config.reset_timeout_s,
            success_threshold=config.success_threshold,
            exclude=config.exclude,
            listeners=[_Recorder(self), *listeners],
            name=config.name,
            # pybreaker signals a trip by raising CircuitBreakerError from its failure path; the
            # adapter suppresses that and re-raises the caller's own exception instead.
            throw_new_error_on_trip=True,
        )
        self._before_call = tuple(
            listener
            for listener in self._breaker.listeners
            if type(listener).before_call is not pybreaker.CircuitBreakerListener.before_call
        )
        """The listeners with a before_call of their own: the base class's does nothing."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``. An open circuit whose reset timeout has
        elapsed still reads ``"open"`` until the next call moves it to half-open."""
        return self._breaker.current_state

    @property
    def state_value(self) -> int:
        return STATE_VALUES[self.state]

    @property
    def fail_counter(self) -> int:
        """Consecutive failures, as kept by pybreaker's storage."""
        return self._breaker.fail_counter

    @property
    def rejected(self) -> int:
        return self.stats.rejected

    @property
    def retry_after_s(self) -> float:
        """Time until an open circuit admits a trial; 0 when not open."""
        if self.state != OPEN or self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.config.reset_timeout_s - self._clock())

    async def call(
        self,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        classify: Callable[[T], Outcome] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` if the circuit admits it, and record the outcome.

        Raised exceptions are failures unless excluded by ``config.exclude`` (then neutral) or not
        an ``Exception`` at all (cancellation, interpreter exit: neutral); either way they
        propagate unchanged. A returned value is a success unless ``classify`` says otherwise;
        it is returned unchanged even when classified as a failure.

        Raises ``CircuitOpenError`` without calling ``fn`` when the circuit is open, or
        half-open with all ``half_open_max_calls`` trial slots busy.
        """
        ticket = self._admit()
        try:
            for listener in self._before_call:
                listener.before_call(self._breaker, fn, *args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._record(ticket, self._classify_exception(exc), exc)
                raise
            outcome = classify(result) if classify is not None else Outcome.SUCCESS
            self._record(ticket, outcome, result=result)
            return result
        finally:
            # A trial slot belongs to the half-open period that granted it; a transition since
            # then has already reset the slots.
            if ticket.trial and ticket.epoch == self._epoch:
                self._trials -= 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for an admin endpoint or a metrics exporter."""
        state = self.state
        return {
            "name": self.name,
            "state": state,
            "state_value": STATE_VALUES[state],
            "fail_counter": self.fail_counter,
            "fail_max": self.config.fail_max,
            "retry_after_s": round(self.retry_after_s, 3),
            "half_open_trials": self._trials if state == HALF_OPEN else 0,
            "transitions": dict(self.transition_counts),
            **asdict(self.stats),
        }

    def _admit(self) -> _Ticket:
        state = self.state
        if state == OPEN:
            retry_after = self.retry_after_s
            if retry_after > 0:
                raise self._reject(state, retry_after)
            self._breaker.half_open()
            state = HALF_OPEN
        if state == HALF_OPEN:
            if self._trials >= self.config.half_open_max_calls:
                raise self._reject(state, self.config.reset_timeout_s)
            self._trials += 1
        self.stats.admitted += 1
        return _Ticket(epoch=self._epoch, trial=state == HALF_OPEN)

    def _reject(self, state: str, retry_after_s: float) -> CircuitOpenError:
        self.stats.rejected += 1
        return CircuitOpenError(self.name, state, retry_after_s)

    def _classify_exception(self, exc: BaseException) -> Outcome:
        if not isinstance(exc, Exception):
            return Outcome.NEUTRAL
        return Outcome.FAILURE if self._breaker.is_system_error(exc) else Outcome.NEUTRAL

    def _record(
        self,
        ticket: _Ticket,
        outcome: Outcome,
        exc: BaseException | None = None,
        result: Any = None,
    ) -> None:
        """Apply an outcome: a raised `exc`, or else a returned `result` (wrapped in a
        FailedResult only if it is a failure, so a success builds no exception)."""
        if outcome is Outcome.NEUTRAL:
            self.stats.neutral += 1
            return
        if ticket.epoch != self._epoch:
            self.stats.stale += 1
            return
        # Same epoch, so pybreaker is still in the (closed or half-open) state that admitted the
        # call, and its state object applies the outcome: counters, listeners, transitions.
        state = self._breaker.state
        if outcome is Outcome.SUCCESS:
            state._handle_success()
            return
        # _handle_error minus its exclusion check, which raised exceptions have already passed
        # and a FailedResult must not be subjected to.
        if exc is None:
            exc = FailedResult(result)
        self._breaker._inc_counter()
        for listener in self._breaker.listeners:
            listener.failure(self._breaker, exc)
        with contextlib.suppress(pybreaker.CircuitBreakerError):
            state.on_failure(exc)

    def _on_transition(self, old: str, new: str) -> None:
        now = self._clock()
        self._epoch += 1
        if new == OPEN:
            self._opened_at = now
        if new == HALF_OPEN:
            self._trials = 0
        self.transitions.append((now, old, new))
        self.transition_counts[f"{old}->{new}"] += 1
        log.log(
            logging.WARNING if new == OPEN else logging.INFO,
            "circuit %s: %s -> %s (fail_counter=%d)",
            self.name,
            old,
            new,
            self._breaker.fail_counter,
        )


class _Recorder(pybreaker.CircuitBreakerListener):
    """Feeds pybreaker's notifications back into the adapter's counters and clock."""

    def __init__(self, owner: AsyncCircuitBreaker) -> None:
        self._owner = owner

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._owner.stats.successes += 1

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._owner.stats.failures += 1

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        # pybreaker notifies before its storage holds the new state, so never read cb.state here.
        old = old_state.name if old_state is not None else "unknown"
        self._owner._on_transition(old, new_state.name)
