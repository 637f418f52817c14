"""AsyncCircuitBreaker: pybreaker's state machine driven correctly across awaits."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import pybreaker
import pytest

from services.gateway.breaker import (
    AsyncCircuitBreaker,
    BreakerConfig,
    CircuitOpenError,
    FailedResult,
    Outcome,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Response:
    status: int


def is_client_error(exc: BaseException) -> bool:
    return isinstance(exc, HTTPError) and 400 <= exc.status < 500


def by_status(response: Response) -> Outcome:
    if response.status >= 500:
        return Outcome.FAILURE
    if response.status >= 400:
        return Outcome.NEUTRAL
    return Outcome.SUCCESS


class Gate:
    """An awaitable stand-in for a slow dependency that the test releases."""

    def __init__(self) -> None:
        self.entered = 0
        self._open = asyncio.Event()
        self._error: BaseException | None = None

    async def __call__(self) -> str:
        self.entered += 1
        await self._open.wait()
        if self._error is not None:
            raise self._error
        return "ok"

    def succeed(self) -> None:
        self._open.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._open.set()


async def ok() -> str:
    return "ok"


async def down() -> str:
    raise ConnectionError("downstream unreachable")


async def client_error() -> str:
    raise HTTPError(404)


def make(clock: FakeClock, **overrides: object) -> AsyncCircuitBreaker:
    settings: dict[str, object] = {"name": "api", "fail_max": 3, "reset_timeout_s": 1.0}
    settings.update(overrides)
    return AsyncCircuitBreaker(BreakerConfig(**settings), clock=clock)  # type: ignore[arg-type]


async def trip(breaker: AsyncCircuitBreaker) -> None:
    for _ in range(breaker.config.fail_max):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    assert breaker.state == "open"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_opens_after_fail_max_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock)
    for expected in (1, 2):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
        assert (breaker.state, breaker.fail_counter) == ("closed", expected)

    # The tripping call still sees its own exception, not pybreaker's CircuitBreakerError.
    with pytest.raises(ConnectionError):
        await breaker.call(down)
    assert breaker.state == "open"
    assert breaker.state_value == 2
    assert breaker.stats.failures == 3


async def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    await breaker.call(ok)
    assert breaker.fail_counter == 0

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    assert (breaker.state, breaker.fail_counter) == ("closed", 2)


async def test_open_rejects_fast_without_calling(clock: FakeClock) -> None:
    breaker = make(clock)
    await trip(breaker)
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    clock.advance(0.3)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(counted)
    assert calls == 0
    assert caught.value.state == "open"
    assert caught.value.retry_after_s == pytest.approx(0.7)
    assert breaker.rejected == 1
    assert breaker.state == "open"


@pytest.mark.parametrize("max_calls", [1, 2, 3])
async def test_half_open_admits_exactly_max_calls_concurrently(
    clock: FakeClock, max_calls: int
) -> None:
    breaker = make(clock, half_open_max_calls=max_calls)
    await trip(breaker)
    clock.advance(1.0)
    gate = Gate()

    tasks = [asyncio.create_task(breaker.call(gate)) for _ in range(max_calls + 3)]
    await asyncio.sleep(0)

    assert gate.entered == max_calls
    assert breaker.state == "half-open"
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 3
    for task in rejected:
        error = task.exception()
        assert isinstance(error, CircuitOpenError)
        assert error.state == "half-open"
        assert error.retry_after_s == 1.0
    assert breaker.snapshot()["half_open_trials"] == max_calls

    gate.succeed()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == max_calls
    assert breaker.state == "closed"
    assert breaker.rejected == 3


async def test_trial_success_closes(clock: FakeClock) -> None:
    breaker = make(clock)
    await trip(breaker)
    clock.advance(1.0)

    assert await breaker.call(ok) == "ok"
    assert (breaker.state, breaker.fail_counter) == ("closed", 0)


async def test_trial_failure_reopens_for_a_full_reset_timeout(clock: FakeClock) -> None:
    breaker = make(clock)
    await trip(breaker)
    clock.advance(1.5)

    with pytest.raises(ConnectionError):
        await breaker.call(down)
    assert breaker.state == "open"
    assert breaker.retry_after_s == pytest.approx(1.0)

    clock.advance(0.5)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after_s == pytest.approx(0.5)


async def test_success_threshold_needs_that_many_trials(clock: FakeClock) -> None:
    breaker = make(clock, success_threshold=2)
    await trip(breaker)
    clock.advance(1.0)

    await breaker.call(ok)
    assert breaker.state == "half-open"
    await breaker.call(ok)
    assert breaker.state == "closed"


async def test_excluded_exceptions_are_neutral_not_success(clock: FakeClock) -> None:
    breaker = make(clock, exclude=(is_client_error,))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(down)

    # pybreaker itself would count the 404 as a success and reset the count to 0.
    with pytest.raises(HTTPError):
        await breaker.call(client_error)
    assert (breaker.state, breaker.fail_counter) == ("closed", 2)
    assert breaker.stats.neutral == 1
    assert breaker.stats.successes == 0

    with pytest.raises(ConnectionError):
        await breaker.call(down)
    assert breaker.state == "open"


async def test_excluded_exception_type_is_neutral(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1, exclude=(HTTPError,))
    with pytest.raises(HTTPError):
        await breaker.call(client_error)
    assert (breaker.state, breaker.stats.neutral) == ("closed", 1)


async def test_neutral_trial_neither_closes_nor_reopens(clock: FakeClock) -> None:
    breaker = make(clock, exclude=(is_client_error,))
    await trip(breaker)
    clock.advance(1.0)

    with pytest.raises(HTTPError):
        await breaker.call(client_error)
    assert breaker.state == "half-open"

    # The neutral trial gave its slot back, so the next call is admitted as the trial.
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


async def test_classified_results_are_returned_unchanged(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2)

    async def respond(status: int) -> Response:
        return Response(status)

    failed = await breaker.call(respond, 503, classify=by_status)
    assert failed == Response(503)
    assert breaker.fail_counter == 1

    assert await breaker.call(respond, 404, classify=by_status) == Response(404)
    assert (breaker.fail_counter, breaker.stats.neutral) == (1, 1)

    await breaker.call(respond, 503, classify=by_status)
    assert breaker.state == "open"

    clock.advance(1.0)
    await breaker.call(respond, status=200, classify=by_status)
    assert breaker.state == "closed"


async def test_cancellation_is_neutral_and_propagates(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2)
    with pytest.raises(ConnectionError):
        await breaker.call(down)

    task = asyncio.create_task(breaker.call(Gate()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert task.cancelled()
    assert (breaker.state, breaker.fail_counter) == ("closed", 1)
    assert breaker.stats.neutral == 1
    assert (breaker.stats.successes, breaker.stats.failures) == (0, 1)


async def test_cancelled_trial_frees_its_slot(clock: FakeClock) -> None:
    breaker = make(clock)
    await trip(breaker)
    clock.advance(1.0)

    trial = asyncio.create_task(breaker.call(Gate()))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)

    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert breaker.state == "half-open"

    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


async def test_stale_success_cannot_close_a_half_open_circuit(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1)
    slow, trial = Gate(), Gate()
    admitted_while_closed = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)

    with pytest.raises(ConnectionError):
        await breaker.call(down)
    clock.advance(1.0)
    trial_task = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"

    slow.succeed()
    assert await admitted_while_closed == "ok"
    assert breaker.state == "half-open"
    assert breaker.stats.stale == 1

    trial.fail(ConnectionError("still down"))
    with pytest.raises(ConnectionError):
        await trial_task
    assert breaker.state == "open"


async def test_reset_timeout_has_sub_second_precision_on_the_real_clock() -> None:
    breaker = AsyncCircuitBreaker(BreakerConfig("api", fail_max=1, reset_timeout_s=0.05))
    with pytest.raises(ConnectionError):
        await breaker.call(down)

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(ok)
    assert 0.0 < caught.value.retry_after_s <= 0.05

    await asyncio.sleep(0.06)
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


class EventLog(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.events: list[str] = []

    def before_call(self, cb, func, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.events.append("before_call")

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self.events.append("success")

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.events.append(f"failure:{type(exc).__name__}")

    def state_change(self, cb, old_state, new_state) -> None:  # type: ignore[no-untyped-def]
        self.events.append(f"{old_state.name}->{new_state.name}")


async def test_listeners_see_calls_outcomes_and_transitions(clock: FakeClock) -> None:
    listener = EventLog()
    breaker = AsyncCircuitBreaker(
        BreakerConfig("api", fail_max=1, reset_timeout_s=1.0), clock=clock, listeners=[listener]
    )

    async def unavailable() -> Response:
        return Response(503)

    await breaker.call(unavailable, classify=by_status)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    clock.advance(1.0)
    await breaker.call(ok)

    assert listener.events == [
        "before_call",
        "failure:FailedResult",
        "closed->open",
        "open->half-open",
        "before_call",
        "half-open->closed",
        "success",
    ]


async def test_transitions_are_recorded_counted_and_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.gateway.breaker")
    breaker = make(clock, fail_max=1)

    with pytest.raises(ConnectionError):
        await breaker.call(down)
    clock.advance(1.0)
    with pytest.raises(ConnectionError):
        await breaker.call(down)
    clock.advance(1.0)
    await breaker.call(ok)

    assert list(breaker.transitions) == [
        (1000.0, "closed", "open"),
        (1001.0, "open", "half-open"),
        (1001.0, "half-open", "open"),
        (1002.0, "open", "half-open"),
        (1002.0, "half-open", "closed"),
    ]
    assert breaker.transition_counts == {
        "closed->open": 1,
        "open->half-open": 2,
        "half-open->open": 1,
        "half-open->closed": 1,
    }
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(logged) == 5
    assert logged[0] == ("WARNING", "circuit api: closed -> open (fail_counter=1)")
    assert logged[-1] == ("INFO", "circuit api: half-open -> closed (fail_counter=0)")


async def test_snapshot_is_json_able(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1, exclude=(is_client_error,))
    await breaker.call(ok)
    with pytest.raises(HTTPError):
        await breaker.call(client_error)
    with pytest.raises(ConnectionError):
        await breaker.call(down)
    clock.advance(0.25)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)

    snapshot = json.loads(json.dumps(breaker.snapshot()))
    assert snapshot == {
        "name": "api",
        "state": "open",
        "state_value": 2,
        "fail_counter": 1,
        "fail_max": 1,
        "retry_after_s": 0.75,
        "half_open_trials": 0,
        "transitions": {"closed->open": 1},
        "admitted": 3,
        "successes": 1,
        "failures": 1,
        "neutral": 1,
        "stale": 0,
        "rejected": 1,
    }


def test_failed_result_carries_the_result() -> None:
    response = Response(503)
    assert FailedResult(response).result is response


@pytest.mark.parametrize(
    "bad",
    [{"fail_max": 0}, {"reset_timeout_s": -1.0}, {"half_open_max_calls": 0}],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig("api", **bad)  # type: ignore[arg-type]
