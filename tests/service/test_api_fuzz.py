"""Malformed input never makes the api fail: >= 1,000 generated requests, no 5xx.

The server is real (aiohttp on an ephemeral 127.0.0.1 port, in a background
thread); hypothesis generates the requests. No faults are set, so any 5xx would
be a bug, not an injected error.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.app import ApiConfig, create_app


@pytest.fixture(scope="module")
def api_port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(ApiConfig(seed=1)), keepalive_timeout=30)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.start()
    assert ready.wait(10), "api did not start"
    yield port[0]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def send(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "")
        response.read()
        return response.status, content_type
    finally:
        connection.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
fault_names = st.sampled_from(
    ["latency_ms", "error_status", "error_rate", "outage_s", "max_concurrent"]
)
bad_fault_values = st.one_of(
    st.text(max_size=10), st.none(), st.booleans(), st.lists(st.integers(), max_size=3),
    st.integers(max_value=-1), st.floats(min_value=1e9, allow_infinity=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)  # fmt: skip


def _not_a_json_object(raw: bytes) -> bool:
    try:
        return not isinstance(json.loads(raw), dict)
    except ValueError:
        return True


malformed_admin_bodies = st.one_of(
    st.binary(max_size=200).filter(_not_a_json_object),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: k not in FAULTS), json_values,
                    min_size=1, max_size=3).map(lambda d: json.dumps(d).encode()),
    st.builds(lambda k, v: json.dumps({k: v}).encode(), fault_names, bad_fault_values),
)  # fmt: skip
FAULTS = {"latency_ms", "error_status", "error_rate", "outage_s", "max_concurrent"}
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-Api-Key", "Idempotency-Key", "Accept", "X-Whatever"]),
    header_values,
    max_size=3,
)
SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(body=malformed_admin_bodies, headers=headers, method=st.sampled_from(["PUT", "POST"]))
def test_malformed_fault_settings_get_4xx_problem_json(api_port, body, headers, method):
    status, content_type = send(api_port, method, "/admin/faults", body, headers)
    assert 400 <= status < 500, (status, body)
    assert content_type.startswith("application/problem+json")
    assert send(api_port, "GET", "/work", b"", {})[0] == 200, "a rejected setting changed nothing"


@SETTINGS
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/work", "/healthz", "/readyz", "/admin/stats", "/nope", "/work/x"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/%?&=.-_", max_size=30).map(
            lambda p: "/" + p
        ),
    ),
    body=st.binary(max_size=300),
    headers=headers,
)
def test_arbitrary_requests_never_5xx(api_port, method, path, body, headers):
    status, _ = send(api_port, method, path, body, headers)
    assert status < 500, (method, path, status)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=512 * 1024))
def test_huge_bodies_are_413(api_port, size):
    status, content_type = send(api_port, "POST", "/work", b"x" * size, {})
    assert status == 413
