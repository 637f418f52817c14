"""Malformed input never makes the gateway fail: >= 1,000 generated requests, no 5xx.

A real gateway in front of a real, healthy api (both aiohttp apps on ephemeral 127.0.0.1
ports, see tests/service/fuzzing.py). The gateway forwards bodies and headers as they
come, so whatever hypothesis sends must come back as the api's own answer or a 4xx from
the gateway itself; a 502/503/504 would mean the gateway broke a healthy call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.app import ApiConfig
from services.api.app import create_app as create_api
from services.gateway.app import create_app
from services.gateway.config import DownstreamConfig, GatewayConfig
from services.gateway.retry.policy import RetryPolicy
from tests.service.fuzzing import METHODS, SETTINGS, headers, paths, send, serve_in_thread

RETRYING = RetryPolicy("full-jitter", max_attempts=3, base_s=0.01, cap_s=0.05, deadline_s=5)


@pytest.fixture(scope="module")
def gateway_port() -> Iterator[int]:
    with serve_in_thread(lambda: create_api(ApiConfig(seed=1))) as api_port:
        downstream = DownstreamConfig(
            name="api", urls=(f"http://127.0.0.1:{api_port}",), policy=RETRYING
        )
        config = GatewayConfig(downstreams=(downstream,), seed=3)
        with serve_in_thread(lambda: create_app(config)) as port:
            yield port


@SETTINGS
@given(
    method=METHODS,
    path=paths(["/work", "/healthz", "/readyz", "/admin/stats", "/metrics", "/work?x=1"]),
    body=st.binary(max_size=300),
    headers=headers,
)
def test_arbitrary_requests_never_5xx(gateway_port, method, path, body, headers):
    status, content_type = send(gateway_port, method, path, body, headers)
    assert status < 500, (method, path, status)
    if status >= 400 and method != "HEAD":
        assert content_type.startswith("application/problem+json"), (method, path, status)


@SETTINGS
@given(
    body=st.binary(max_size=2000),
    headers=headers,
    key=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
)
def test_forwarded_posts_with_odd_bodies_and_keys_never_5xx(gateway_port, body, headers, key):
    status, _ = send(gateway_port, "POST", "/work", body, {**headers, "Idempotency-Key": key})
    assert status < 500, (status, body[:40], key)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=512 * 1024))
def test_huge_bodies_are_413_problem_json(gateway_port, size):
    status, content_type = send(gateway_port, "POST", "/work", b"x" * size, {})
    assert status == 413, status
    assert content_type.startswith("application/problem+json")
