"""What may be retried (retry.retryable): failed attempts by kind (and their labels), methods."""

from __future__ import annotations

import aiohttp
import pytest

from services.gateway.retry.outcome import Outcome, outcome_label
from services.gateway.retry.retryable import is_retryable, may_retry


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
