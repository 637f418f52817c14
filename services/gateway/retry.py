"""Retry policy for the gateway's calls to the api: when to retry, how long to wait, when to stop.

One logical request goes through `call_with_retries`, which drives a fresh
`tenacity.AsyncRetrying` per call. Retrying objects keep their attempt state in a
`threading.local`, and every asyncio task runs on the same thread, so one object shared
by concurrent requests would mix up their attempt counts.

Three things bound the retries of a call:

* `RetryPolicy.max_attempts` -- attempts in total, the first one included;
* `RetryPolicy.deadline_s` -- wall time for all attempts and the sleeps between them;
* an optional, process-wide `RetryBudget` -- retries as a share of recent traffic, so a
  backend outage cannot turn into a retry storm that multiplies its load.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args

import aiohttp
from tenacity import AsyncRetrying, RetryCallState
from tenacity.retry import retry_if_result
from tenacity.stop import stop_after_attempt, stop_base
from tenacity.wait import (
    WaitBaseT,
    wait_base,
    wait_exponential,
    wait_none,
    wait_random_exponential,
)

Strategy = Literal[
    "none", "immediate", "exponential", "full-jitter", "equal-jitter", "decorrelated-jitter"
]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 section 9.2.2: repeating these has the same effect on the server as sending once."""

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses that say "not now" rather than "no".

502/503/504 come from a proxy or an overloaded backend: the work most likely was not done,
or timed out, and a later attempt (maybe on another replica) can succeed. 429 asks the
client to come back later, usually with a Retry-After. 500 is left out on purpose: it
normally means the backend failed while handling this very request, so a repeat tends to
fail the same way, and only adds load to a service that is already in trouble.
"""

_NOT_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
)
"""Connection errors caused by configuration (TLS), which a retry cannot fix."""


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
            _check_seconds(name, getattr(self, name))
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
            _check_seconds("attempt_timeout_s", self.attempt_timeout_s)
            if self.attempt_timeout_s <= 0:
                raise ValueError(f"attempt_timeout_s must be > 0; got {self.attempt_timeout_s}")

    @property
    def attempts_allowed(self) -> int:
        return 1 if self.strategy == "none" else self.max_attempts

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """Build a policy from JSON or CLI settings.

        Keys may use dashes ("max-attempts") as well as underscores, and values may be
        strings ("3", "0.05", "false", "none"), so that command-line flags and JSON
        documents go through the same parser. Unknown keys are an error rather than
        ignored: a typo in a lab setting should not silently fall back to a default.
        """
        known = {f.name for f in fields(cls)}
        settings: dict[str, Any] = {}
        unknown: list[str] = []
        for raw_key, value in data.items():
            key = raw_key.replace("-", "_")
            if key in known:
                settings[key] = _PARSERS[key](key, value)
            else:
                unknown.append(raw_key)
        if unknown:
            raise ValueError(
                f"unknown retry setting(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**settings)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


def _parse_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string; got {value!r}")
    return value.strip().lower()


def _parse_int(name: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a whole number; got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # validated by RetryPolicy


def _parse_float(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds; got {value!r}") from None
    return value  # validated by RetryPolicy


def _parse_optional_float(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return _parse_float(name, value)


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value  # validated by RetryPolicy


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "strategy": _parse_str,
    "max_attempts": _parse_int,
    "base_s": _parse_float,
    "cap_s": _parse_float,
    "deadline_s": _parse_float,
    "honour_retry_after": _parse_bool,
    "max_retry_after_s": _parse_float,
    "attempt_timeout_s": _parse_optional_float,
}


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a response, or the exception that prevented one."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None
    attempts: int = 1
    """Attempts made by the call so far; set by call_with_retries."""

    def __post_init__(self) -> None:
        if (self.status is None) == (self.error is None):
            raise ValueError("an Outcome has either a status or an error, not both or neither")

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (works for dicts and aiohttp's CIMultiDict)."""
        return _header(self.headers, name)

    def retry_after_s(self, now: datetime | None = None) -> float | None:
        return parse_retry_after(self.header("Retry-After"), now=now)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a Retry-After value, or None if absent or unusable.

    RFC 9110 allows delay-seconds ("120") or an HTTP-date; a date in the past means "now"
    (0.0). Fractional seconds are accepted although the RFC only has whole ones, because
    lab backends use them to keep tests fast. Anything else -- negative numbers, junk --
    is ignored rather than trusted, so a bad header falls back to the normal backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def is_retryable(outcome: Outcome) -> bool:
    """Whether a failed attempt is worth repeating (see RETRYABLE_STATUSES for statuses).

    Connection failures and timeouts are transient by nature, except TLS configuration
    errors. Other exceptions are bugs or malformed responses and are not retried.
    """
    error = outcome.error
    if error is not None:
        if isinstance(error, _NOT_TRANSIENT_ERRORS):
            return False
        return isinstance(error, aiohttp.ClientConnectionError | ConnectionError | TimeoutError)
    return outcome.status in RETRYABLE_STATUSES


def may_retry(method: str, headers: Mapping[str, str] | None = None) -> bool:
    """Whether the request may be sent more than once.

    After a timeout or a 502/504 the client cannot know whether the backend did the work,
    so only requests that are safe to repeat are retried: idempotent methods, or any
    method carrying an Idempotency-Key that lets the backend deduplicate.
    """
    if method.upper() in IDEMPOTENT_METHODS:
        return True
    key = _header(headers, "Idempotency-Key")
    return key is not None and key.strip() != ""


def outcome_label(outcome: Outcome) -> str:
    """Short name of an outcome for counters: "200", "503", "timeout", "connect_error", ..."""
    error = outcome.error
    if error is None:
        return str(outcome.status)
    # ServerTimeoutError is also a ClientConnectionError: test for timeouts first.
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect_error"
    if isinstance(error, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "disconnected"
    if isinstance(error, aiohttp.ClientConnectionError | ConnectionError):
        return "connection_error"
    return "error"


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
        for name in ("ratio", "min_retries_per_s", "window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number; got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        if self.window_s == 0:
            raise ValueError("window_s must be > 0")

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


@dataclass
class AttemptStats:
    """Counters over all calls that share this object (one per gateway, usually)."""

    by_outcome: Counter[str] = field(default_factory=Counter)
    """Every attempt, keyed by outcome_label: "200", "503", "timeout", ..."""
    first_attempts: int = 0
    retries: int = 0
    retries_denied_by_budget: int = 0
    gave_up_deadline: int = 0
    """Calls that stopped because the next attempt would not fit in the deadline."""
    gave_up_max_attempts: int = 0
    not_retried_unsafe: int = 0
    """Retryable failures left alone because the request was not idempotent."""

    def record_attempt(self, outcome: Outcome, *, retry: bool) -> None:
        self.by_outcome[outcome_label(outcome)] += 1
        if retry:
            self.retries += 1
        else:
            self.first_attempts += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "attempts": self.first_attempts + self.retries,
            "first_attempts": self.first_attempts,
            "retries": self.retries,
            "by_outcome": dict(sorted(self.by_outcome.items())),
            "retries_denied_by_budget": self.retries_denied_by_budget,
            "gave_up_deadline": self.gave_up_deadline,
            "gave_up_max_attempts": self.gave_up_max_attempts,
            "not_retried_unsafe": self.not_retried_unsafe,
        }


Send = Callable[[float], Awaitable[Outcome]]
"""Performs one attempt within the given timeout (seconds) and reports its Outcome."""


class _Call:
    """One logical request across its attempts: the deadline clock and the last outcome."""

    def __init__(
        self, send: Send, policy: RetryPolicy, *, idempotent: bool, stats: AttemptStats
    ) -> None:
        self.send = send
        self.policy = policy
        self.idempotent = idempotent
        self.stats = stats
        self.deadline = time.monotonic() + policy.deadline_s
        self.attempts = 0
        self.last: Outcome | None = None
        self.out_of_time = False

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def attempt(self) -> Outcome:
        remaining = self.remaining()
        if self.last is not None and remaining <= 0:
            # The backoff sleep overran the deadline: keep the last answer, do not send.
            self.out_of_time = True
            self.stats.gave_up_deadline += 1
            return self.last
        timeout = remaining
        if self.policy.attempt_timeout_s is not None:
            timeout = min(timeout, self.policy.attempt_timeout_s)
        self.attempts += 1
        try:
            # Enforced here too, so a send that ignores its timeout cannot overrun the deadline.
            async with asyncio.timeout(timeout):
                outcome = await self.send(timeout)
        except Exception as exc:  # CancelledError is a BaseException and propagates
            outcome = Outcome(error=exc)
        outcome = replace(outcome, attempts=self.attempts)
        self.stats.record_attempt(outcome, retry=self.attempts > 1)
        self.last = outcome
        return outcome

    def should_retry(self, outcome: Outcome) -> bool:
        if self.out_of_time or not is_retryable(outcome):
            return False
        if not self.idempotent:
            self.stats.not_retried_unsafe += 1
            return False
        return True


class _Stop(stop_base):
    """stop_after_attempt | stop_before_delay | budget, checked in that order.

    tenacity computes the wait before the stop, so stop_before_delay sees the coming
    sleep (Retry-After included) and gives up when the next attempt would start past the
    deadline; stop_after_delay would only notice after overrunning it. The budget comes
    last so a retry that is not going to happen anyway does not spend it.
    """

    def __init__(self, call: _Call, budget: RetryBudget | None) -> None:
        self.after_attempts = stop_after_attempt(call.policy.attempts_allowed)
        self.call = call
        self.budget = budget
        self.stats = call.stats

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.after_attempts(retry_state):
            self.stats.gave_up_max_attempts += 1
            return True
        # stop_before_delay on the call's own clock: tenacity's starts after the first
        # attempt (see call_with_retries).
        if (retry_state.upcoming_sleep or 0.0) >= self.call.remaining():
            self.stats.gave_up_deadline += 1
            return True
        if self.budget is not None and not self.budget.try_acquire():
            self.stats.retries_denied_by_budget += 1
            return True
        return False


def _last_outcome(retry_state: RetryCallState) -> Outcome:
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


async def call_with_retries(
    send: Send,
    policy: RetryPolicy,
    *,
    method: str,
    headers: Mapping[str, str] | None = None,
    budget: RetryBudget | None = None,
    stats: AttemptStats | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """Run `send` until it succeeds, fails for good, or the policy says stop.

    `send(timeout_s)` makes one attempt and must finish within timeout_s, which is never
    more than the time left before the deadline. Exceptions it raises are captured into
    the Outcome. Returns the last Outcome, with `attempts` set; retryable failures are
    returned, not raised, and the caller maps them to its own 502/503/504.
    asyncio.CancelledError is never retried: it propagates as soon as it happens.
    """
    stats = stats if stats is not None else AttemptStats()
    call = _Call(send, policy, idempotent=may_retry(method, headers), stats=stats)
    if budget is not None:
        budget.record_request()
    # The happy path never builds the retry loop: most calls succeed at once, and
    # tenacity's per-attempt bookkeeping costs the gateway ~5 % of its throughput.
    first = await call.attempt()
    if not call.should_retry(first):
        return first
    replayed = [first]

    async def attempt() -> Outcome:
        """Attempt 1 is the one already made; tenacity decides about the rest."""
        return replayed.pop() if replayed else await call.attempt()

    retrying = AsyncRetrying(
        stop=_Stop(call, budget),
        wait=make_wait(policy, rng),
        retry=retry_if_result(call.should_retry),
        retry_error_callback=_last_outcome,
    )
    return await retrying(attempt)
