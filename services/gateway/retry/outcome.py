"""Outcome: what one attempt produced (a response, or the exception that prevented one).

Also how to read it: its short label for counters and the Retry-After it carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp


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
        return find_header(self.headers, name)

    def retry_after_s(self, now: datetime | None = None) -> float | None:
        return parse_retry_after(self.header("Retry-After"), now=now)


def find_header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value by case-insensitive name, or None."""
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
