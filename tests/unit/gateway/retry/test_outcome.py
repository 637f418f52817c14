"""Outcome (retry.outcome): status or error, headers, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.gateway.retry.outcome import Outcome, parse_retry_after

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


def test_outcome_needs_a_status_or_an_error() -> None:
    with pytest.raises(ValueError, match="either a status or an error"):
        Outcome()
    with pytest.raises(ValueError, match="either a status or an error"):
        Outcome(status=200, error=TimeoutError())
