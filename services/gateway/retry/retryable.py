"""What may be retried: which failed attempts are worth repeating, which requests are safe to."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from services.gateway.retry.outcome import Outcome, find_header

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
    key = find_header(headers, "Idempotency-Key")
    return key is not None and key.strip() != ""
