"""Retry policy: wait distributions, classification, deadline, budget, stats."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from tenacity import RetryCallState

from services.gateway.retry import (
    AttemptStats,
    Outcome,
    RetryBudget,
    RetryPolicy,
    call_with_retries,
    is_retryable,
    make_wait,
    may_retry,
    outcome_label,
    parse_retry_after,
)

SAMPLES = 4000


def state(attempt: int, *, previous_sleep: float = 0.0, outcome: Outcome | None = None):
    """A tenacity retry state as it is when the wait after `attempt` is computed."""
    rs = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    rs.attempt_number = attempt
    rs.upcoming_sleep = previous_sleep
    rs.set_result(outcome if outcome is not None else Outcome(status=503))
    return rs


def policy(strategy: str = "exponential", **overrides) -> RetryPolicy:
    settings = {"base_s": 0.1, "cap_s": 2.0, "honour_retry_after": False} | overrides
    return RetryPolicy(strategy=strategy, **settings)


def samples(strategy: str, attempt: int, seed: int = 7, **overrides) -> list[float]:
    wait = make_wait(policy(strategy, **overrides), random.Random(seed))
    return [wait(state(attempt)) for _ in range(SAMPLES)]


# -- waits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (30, 2.0), (5000, 2.0)],
)
def test_exponential_is_exact_and_first_retry_waits_base(attempt: int, expected: float) -> None:
    wait = make_wait(policy("exponential"), random.Random(0))
    assert wait(state(attempt)) == pytest.approx(expected)


@pytest.mark.parametrize("strategy", ["none", "immediate"])
def test_no_backoff_strategies_do_not_wait(strategy: str) -> None:
    assert set(samples(strategy, 3)) == {0.0}


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8])
def test_full_jitter_spans_zero_to_exponential(attempt: int) -> None:
    high = min(2.0, 0.1 * 2 ** (attempt - 1))
    waits = samples("full-jitter", attempt)
    assert all(0.0 <= w <= high for w in waits)
    assert statistics.fmean(waits) == pytest.approx(high / 2, rel=0.05)
    assert min(waits) < 0.02 * high and max(waits) > 0.98 * high


@pytest.mark.parametrize("attempt", [1, 2, 4, 8])
def test_equal_jitter_spans_half_to_full_exponential(attempt: int) -> None:
    temp = min(2.0, 0.1 * 2 ** (attempt - 1))
    waits = samples("equal-jitter", attempt)
    assert all(temp / 2 <= w <= temp for w in waits)
    assert statistics.fmean(waits) == pytest.approx(0.75 * temp, rel=0.03)
    assert min(waits) < 0.51 * temp and max(waits) > 0.99 * temp


@pytest.mark.parametrize("previous", [0.0, 0.1, 0.25, 0.6, 2.0])
def test_decorrelated_jitter_draws_between_base_and_three_times_previous(previous: float) -> None:
    wait = make_wait(policy("decorrelated-jitter"), random.Random(3))
    high = min(2.0, max(0.1, previous) * 3)
    waits = [wait(state(2, previous_sleep=previous)) for _ in range(SAMPLES)]
    assert all(0.1 <= w <= high for w in waits)
    assert max(waits) > 0.98 * high
    if high < 2.0:  # uncapped: a plain uniform draw
        assert statistics.fmean(waits) == pytest.approx((0.1 + high) / 2, rel=0.05)


def test_decorrelated_jitter_chain_stays_within_bounds() -> None:
    wait = make_wait(policy("decorrelated-jitter", cap_s=1.0), random.Random(11))
    previous = 0.0
    for attempt in range(1, 200):
        sleep = wait(state(attempt, previous_sleep=previous))
        assert 0.1 <= sleep <= min(1.0, max(0.1, previous) * 3)
        previous = sleep


@pytest.mark.parametrize("strategy", ["full-jitter", "equal-jitter", "decorrelated-jitter"])
def test_jitter_follows_the_injected_rng_not_the_global_one(strategy: str) -> None:
    random.seed(1)
    first = samples(strategy, 3, seed=42)[:20]
    random.seed(2)
    again = samples(strategy, 3, seed=42)[:20]
    other = samples(strategy, 3, seed=43)[:20]
    assert first == again
    assert first != other


# -- Retry-After -------------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Sat, 01 Mar 2025 12:00:45 GMT", 45.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e3", None),
        ("Someday, 99 Foo 2025 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_header_is_case_insensitive() -> None:
    assert Outcome(status=429, headers={"retry-after": "4"}).retry_after_s() == 4.0


def throttled(retry_after: str) -> Outcome:
    return Outcome(status=503, headers={"Retry-After": retry_after})


def test_retry_after_lengthens_the_wait() -> None:
    wait = make_wait(policy("exponential", honour_retry_after=True, max_retry_after_s=10.0))
    assert wait(state(1, outcome=throttled("3"))) == 3.0
    assert wait(state(1, outcome=Outcome(status=503))) == pytest.approx(0.1)


def test_retry_after_never_shortens_the_backoff() -> None:
    wait = make_wait(policy("exponential", honour_retry_after=True))
    assert wait(state(5, outcome=throttled("0"))) == pytest.approx(1.6)


def test_retry_after_is_clamped_and_can_be_ignored() -> None:
    clamped = make_wait(policy("exponential", honour_retry_after=True, max_retry_after_s=0.5))
    assert clamped(state(1, outcome=throttled("3600"))) == 0.5
    ignored = make_wait(policy("exponential", honour_retry_after=False))
    assert ignored(state(1, outcome=throttled("3"))) == pytest.approx(0.1)
    garbage = make_wait(policy("exponential", honour_retry_after=True))
    assert garbage(state(1, outcome=throttled("later"))) == pytest.approx(0.1)


# -- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "retryable", "label"),
    [
        (Outcome(status=200), False, "200"),
        (Outcome(status=204), False, "204"),
        (Outcome(status=400), False, "400"),
        (Outcome(status=404), False, "404"),
        (Outcome(status=409), False, "409"),
        (Outcome(status=429), True, "429"),
        (Outcome(status=500), False, "500"),
        (Outcome(status=501), False, "501"),
        (Outcome(status=502), True, "502"),
        (Outcome(status=503), True, "503"),
        (Outcome(status=504), True, "504"),
        (Outcome(error=TimeoutError()), True, "timeout"),
        (Outcome(error=aiohttp.ServerTimeoutError("read")), True, "timeout"),
        (Outcome(error=aiohttp.ConnectionTimeoutError("connect")), True, "timeout"),
        (Outcome(error=ConnectionRefusedError()), True, "connect_error"),
        (Outcome(error=aiohttp.ServerDisconnectedError()), True, "disconnected"),
        (Outcome(error=ConnectionResetError()), True, "disconnected"),
        (Outcome(error=aiohttp.ClientConnectionError("x")), True, "connection_error"),
        (Outcome(error=aiohttp.ClientPayloadError("truncated")), False, "error"),
        (Outcome(error=ValueError("bug")), False, "error"),
    ],
)
def test_classification(outcome: Outcome, retryable: bool, label: str) -> None:
    assert is_retryable(outcome) is retryable
    assert outcome_label(outcome) == label


def test_tls_configuration_errors_are_not_retried() -> None:
    assert not is_retryable(Outcome(error=aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 1)))


@pytest.mark.parametrize(
    ("method", "headers", "allowed"),
    [
        ("GET", None, True),
        ("get", {}, True),
        ("HEAD", None, True),
        ("PUT", None, True),
        ("DELETE", None, True),
        ("OPTIONS", None, True),
        ("POST", None, False),
        ("PATCH", {}, False),
        ("POST", {"Idempotency-Key": "abc-123"}, True),
        ("PATCH", {"idempotency-key": "abc-123"}, True),
        ("POST", {"Idempotency-Key": "  "}, False),
        ("POST", {"X-Request-Id": "abc"}, False),
    ],
)
def test_may_retry(method: str, headers: dict[str, str] | None, allowed: bool) -> None:
    assert may_retry(method, headers) is allowed


# -- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "linear"}, "strategy must be one of"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"max_attempts": True}, "max_attempts must be a whole number"),
        ({"base_s": 0}, "base_s must be > 0"),
        ({"base_s": -1}, "base_s must be a finite number >= 0"),
        ({"cap_s": float("nan")}, "cap_s must be a finite number"),
        ({"base_s": 1.0, "cap_s": 0.5}, r"cap_s \(0.5\) must be >= base_s \(1.0\)"),
        ({"deadline_s": 0}, "deadline_s must be > 0"),
        ({"deadline_s": float("inf")}, "deadline_s must be a finite number"),
        ({"max_retry_after_s": "5"}, "max_retry_after_s must be a number"),
        ({"honour_retry_after": "yes"}, "honour_retry_after must be true or false"),
        ({"attempt_timeout_s": 0}, "attempt_timeout_s must be > 0"),
    ],
)
def test_policy_validation(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**settings)  # type: ignore[arg-type]


def test_policy_from_dict_parses_cli_and_json_settings() -> None:
    parsed = RetryPolicy.from_dict(
        {
            "strategy": "Decorrelated-Jitter",
            "max-attempts": "4",
            "base_s": "0.05",
            "cap-s": 1,
            "deadline_s": 2.5,
            "honour-retry-after": "false",
            "attempt_timeout_s": "none",
        }
    )
    assert parsed == RetryPolicy(
        strategy="decorrelated-jitter",
        max_attempts=4,
        base_s=0.05,
        cap_s=1.0,
        deadline_s=2.5,
        honour_retry_after=False,
        attempt_timeout_s=None,
    )
    assert RetryPolicy.from_dict(parsed.as_dict()) == parsed
    assert json.loads(json.dumps(parsed.as_dict()))["strategy"] == "decorrelated-jitter"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_attempt": 3}, "unknown retry setting.*max_attempt"),
        ({"max_attempts": "three"}, "max_attempts must be a whole number"),
        ({"base_s": "fast"}, "base_s must be a number of seconds"),
        ({"honour_retry_after": "maybe"}, "honour_retry_after must be true or false"),
        ({"strategy": 3}, "strategy must be a string"),
    ],
)
def test_policy_from_dict_rejects_bad_settings(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy.from_dict(settings)


def test_strategy_none_makes_a_single_attempt() -> None:
    assert RetryPolicy(strategy="none", max_attempts=5).attempts_allowed == 1
    assert RetryPolicy(strategy="immediate", max_attempts=5).attempts_allowed == 5


# -- call_with_retries -------------------------------------------------------------------


class Backend:
    """A scripted send(): plays the given outcomes in order, repeating the last one."""

    def __init__(self, *script: Outcome | BaseException, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.timeouts: list[float] = []
        self.started: list[float] = []

    async def __call__(self, timeout_s: float) -> Outcome:
        self.timeouts.append(timeout_s)
        self.started.append(time.monotonic())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        step = self.script[min(len(self.timeouts), len(self.script)) - 1]
        if isinstance(step, BaseException):
            raise step
        return step

    @property
    def calls(self) -> int:
        return len(self.timeouts)


OK = Outcome(status=200, body=b"ok")
UNAVAILABLE = Outcome(status=503)
FAST = RetryPolicy(strategy="exponential", max_attempts=5, base_s=0.001, cap_s=0.01)


async def test_retries_until_success() -> None:
    backend = Backend(UNAVAILABLE, Outcome(error=aiohttp.ServerDisconnectedError()), OK)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert result.status == 200 and result.body == b"ok"
    assert result.attempts == 3 and backend.calls == 3
    assert stats.snapshot() == {
        "attempts": 3,
        "first_attempts": 1,
        "retries": 2,
        "by_outcome": {"200": 1, "503": 1, "disconnected": 1},
        "retries_denied_by_budget": 0,
        "gave_up_deadline": 0,
        "gave_up_max_attempts": 0,
        "not_retried_unsafe": 0,
    }


async def test_max_attempts_is_respected_and_last_outcome_returned() -> None:
    backend = Backend(Outcome(status=502), Outcome(status=504), UNAVAILABLE)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert backend.calls == 5
    assert result.status == 503 and result.attempts == 5
    assert stats.gave_up_max_attempts == 1
    assert stats.by_outcome == {"502": 1, "504": 1, "503": 3}


async def test_strategy_none_does_not_retry() -> None:
    backend = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(
        backend, RetryPolicy(strategy="none", max_attempts=5), method="GET"
    )
    assert backend.calls == 1 and result.status == 503


@pytest.mark.parametrize("status", [200, 400, 404, 500])
async def test_non_retryable_statuses_are_returned_at_once(status: int) -> None:
    backend = Backend(Outcome(status=status), OK)
    result = await call_with_retries(backend, FAST, method="GET")
    assert backend.calls == 1 and result.status == status and result.attempts == 1


async def test_exceptions_from_send_become_outcomes() -> None:
    refused = aiohttp.ClientConnectionError("refused")
    backend = Backend(refused)
    stats = AttemptStats()
    result = await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert result.error is refused and result.status is None
    assert backend.calls == 5 and stats.by_outcome == {"connection_error": 5}

    bug = Backend(KeyError("bug"), OK)
    result = await call_with_retries(bug, FAST, method="GET")
    assert isinstance(result.error, KeyError) and bug.calls == 1


async def test_non_idempotent_requests_are_not_retried_without_a_key() -> None:
    stats = AttemptStats()
    post = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(post, FAST, method="POST", stats=stats)
    assert post.calls == 1 and result.status == 503
    assert stats.not_retried_unsafe == 1

    keyed = Backend(UNAVAILABLE, OK)
    result = await call_with_retries(
        keyed, FAST, method="POST", headers={"Idempotency-Key": "k1"}, stats=stats
    )
    assert keyed.calls == 2 and result.status == 200


async def test_deadline_stops_retries_before_it_is_overrun() -> None:
    # Waits 0.01, 0.02, 0.04, 0.08 (total 0.15), then 0.16 would end past 0.25: stop.
    slow = RetryPolicy(
        strategy="exponential", max_attempts=100, base_s=0.01, cap_s=1.0, deadline_s=0.25
    )
    backend = Backend(UNAVAILABLE)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(backend, slow, method="GET", stats=stats)
    elapsed = time.monotonic() - started
    assert backend.calls == 5 and result.attempts == 5
    assert elapsed < 0.25
    assert stats.gave_up_deadline == 1 and stats.gave_up_max_attempts == 0


async def test_retry_after_past_the_deadline_gives_up_instead_of_waiting() -> None:
    patient = RetryPolicy(
        strategy="immediate", max_attempts=5, deadline_s=0.5, max_retry_after_s=30.0
    )
    backend = Backend(throttled("10"), OK)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(backend, patient, method="GET", stats=stats)
    assert time.monotonic() - started < 0.1
    assert backend.calls == 1 and result.status == 503
    assert stats.gave_up_deadline == 1


async def test_retry_after_lengthens_the_real_sleep() -> None:
    backend = Backend(Outcome(status=429, headers={"Retry-After": "0.15"}), OK)
    policy_ = RetryPolicy(strategy="immediate", deadline_s=1.0)
    result = await call_with_retries(backend, policy_, method="GET")
    assert result.status == 200
    assert backend.started[1] - backend.started[0] >= 0.15


async def test_attempt_timeouts_never_exceed_the_time_left() -> None:
    policy_ = RetryPolicy(
        strategy="immediate", max_attempts=4, deadline_s=0.3, attempt_timeout_s=0.2
    )
    backend = Backend(UNAVAILABLE, delay_s=0.05)
    await call_with_retries(backend, policy_, method="GET")
    assert backend.calls == 4
    assert backend.timeouts[0] == 0.2
    for started, timeout in zip(backend.started, backend.timeouts, strict=True):
        left = 0.3 - (started - backend.started[0])
        assert timeout <= left + 0.005
    assert backend.timeouts[-1] < 0.2


async def test_a_hanging_send_is_cut_off_at_the_deadline() -> None:
    backend = Backend(OK, delay_s=10.0)
    stats = AttemptStats()
    started = time.monotonic()
    result = await call_with_retries(
        backend, RetryPolicy(strategy="immediate", deadline_s=0.1), method="GET", stats=stats
    )
    assert time.monotonic() - started < 0.3
    assert isinstance(result.error, TimeoutError)
    assert stats.by_outcome == {"timeout": 1}


async def test_cancelled_error_from_send_propagates_without_retry() -> None:
    backend = Backend(asyncio.CancelledError(), OK)
    stats = AttemptStats()
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(backend, FAST, method="GET", stats=stats)
    assert backend.calls == 1
    assert stats.snapshot()["attempts"] == 0


async def test_cancelling_the_caller_during_backoff_propagates() -> None:
    backend = Backend(UNAVAILABLE)
    sleepy = RetryPolicy(strategy="exponential", base_s=5.0, cap_s=5.0, deadline_s=20.0)
    task = asyncio.create_task(call_with_retries(backend, sleepy, method="GET"))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.calls == 1


async def test_concurrent_calls_keep_their_own_attempt_counts() -> None:
    stats = AttemptStats()
    backends = [Backend(UNAVAILABLE, UNAVAILABLE, OK, delay_s=0.001 * i) for i in range(20)]
    results = await asyncio.gather(
        *(call_with_retries(b, FAST, method="GET", stats=stats) for b in backends)
    )
    assert [r.attempts for r in results] == [3] * 20
    assert [b.calls for b in backends] == [3] * 20
    assert stats.first_attempts == 20 and stats.retries == 40


async def test_budget_denial_stops_retries_in_a_call() -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_s=0, window_s=10, clock=lambda: 0.0)
    stats = AttemptStats()
    backend = Backend(UNAVAILABLE)
    # One request earns 0.5 retries: not enough for a single retry.
    result = await call_with_retries(backend, FAST, method="GET", budget=budget, stats=stats)
    assert backend.calls == 1 and result.status == 503
    assert stats.retries_denied_by_budget == 1
    # A second request brings the allowance to one retry.
    backend = Backend(UNAVAILABLE)
    await call_with_retries(backend, FAST, method="GET", budget=budget, stats=stats)
    assert backend.calls == 2
    assert stats.retries_denied_by_budget == 2
    assert budget.snapshot()["retries_in_window"] == 1


async def test_budget_is_not_spent_when_the_call_stops_anyway() -> None:
    budget = RetryBudget(ratio=0, min_retries_per_s=1, window_s=10, clock=lambda: 0.0)
    single = RetryPolicy(strategy="immediate", max_attempts=1)
    await call_with_retries(Backend(UNAVAILABLE), single, method="GET", budget=budget)
    await call_with_retries(Backend(UNAVAILABLE), FAST, method="POST", budget=budget)
    assert budget.snapshot()["retries_in_window"] == 0


# -- budget ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_then_denies_as_failures_pile_up_and_recovers() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(20):
        budget.record_request()
    granted = [budget.try_acquire() for _ in range(6)]
    assert granted == [True, True, True, True, False, False]

    # Fresh traffic (successful requests) earns new allowance: 5 requests -> 1 retry.
    for _ in range(5):
        budget.record_request()
    assert budget.try_acquire() is True
    assert budget.try_acquire() is False

    # Everything ages out of the window; new requests start a fresh budget.
    clock.now += 10.5
    assert budget.snapshot()["requests_in_window"] == 0
    assert budget.try_acquire() is False
    for _ in range(10):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]


def test_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_retries_per_s=0, window_s=10, clock=clock)
    for _ in range(4):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]
    clock.now += 6
    budget.record_request()
    budget.record_request()
    assert [budget.try_acquire() for _ in range(2)] == [True, False]  # 6 requests: 3 retries
    clock.now += 4.5  # the first 4 requests and 2 retries leave the window
    assert budget.snapshot() == {
        "requests_in_window": 2,
        "retries_in_window": 1,
        "retries_allowed_in_window": 1.0,
    }
    assert budget.try_acquire() is False


def test_budget_floor_allows_retries_at_low_traffic() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_s=1, window_s=5, clock=clock)
    assert [budget.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 5
    assert budget.try_acquire() is True


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ratio": -0.1}, "ratio must be a finite number >= 0"),
        ({"min_retries_per_s": float("nan")}, "min_retries_per_s must be a finite number"),
        ({"window_s": 0}, "window_s must be > 0"),
        ({"ratio": "0.2"}, "ratio must be a number"),
    ],
)
def test_budget_validation(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudget(**settings)  # type: ignore[arg-type]


def test_stats_snapshot_is_json_able() -> None:
    stats = AttemptStats()
    stats.record_attempt(Outcome(status=503), retry=False)
    stats.record_attempt(Outcome(error=TimeoutError()), retry=True)
    stats.record_attempt(Outcome(status=200), retry=True)
    snapshot = json.loads(json.dumps(stats.snapshot()))
    assert snapshot["attempts"] == 3
    assert snapshot["first_attempts"] == 1 and snapshot["retries"] == 2
    assert snapshot["by_outcome"] == {"200": 1, "503": 1, "timeout": 1}


def test_outcome_needs_a_status_or_an_error() -> None:
    with pytest.raises(ValueError, match="either a status or an error"):
        Outcome()
    with pytest.raises(ValueError, match="either a status or an error"):
        Outcome(status=200, error=TimeoutError())
