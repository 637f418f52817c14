"""Malformed input never makes the api fail: >= 1,000 generated requests, no 5xx.

The server is real (see tests/service/fuzzing.py); hypothesis generates the requests.
No faults are set, so any 5xx would be a bug, not an injected error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.app import ApiConfig, create_app
from tests.service.fuzzing import METHODS, SETTINGS, headers, paths, send, serve_in_thread


@pytest.fixture(scope="module")
def api_port() -> Iterator[int]:
    with serve_in_thread(lambda: create_app(ApiConfig(seed=1))) as port:
        yield port


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


@SETTINGS
@given(body=malformed_admin_bodies, headers=headers, method=st.sampled_from(["PUT", "POST"]))
def test_malformed_fault_settings_get_4xx_problem_json(api_port, body, headers, method):
    status, content_type = send(api_port, method, "/admin/faults", body, headers)
    assert 400 <= status < 500, (status, body)
    assert content_type.startswith("application/problem+json")
    assert send(api_port, "GET", "/work", b"", {})[0] == 200, "a rejected setting changed nothing"


@SETTINGS
@given(
    method=METHODS,
    path=paths(["/work", "/healthz", "/readyz", "/admin/stats", "/nope", "/work/x"]),
    body=st.binary(max_size=300),
    headers=headers,
)
def test_arbitrary_requests_never_5xx(api_port, method, path, body, headers):
    status, content_type = send(api_port, method, path, body, headers)
    assert status < 500, (method, path, status)
    if status >= 400 and method != "HEAD":
        assert content_type.startswith("application/problem+json"), (method, path, status)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=512 * 1024))
def test_huge_bodies_are_413(api_port, size):
    status, content_type = send(api_port, "POST", "/work", b"x" * size, {})
    assert status == 413
    assert content_type.startswith("application/problem+json")
