"""Malformed orders never make the api fail: generated bodies, keys and queries get
201, 4xx problem+json, never a 5xx (the orders live on a real Redis)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.app import ApiConfig, create_app
from services.api.orders import OrdersConfig
from tests.service.fuzzing import send, serve_in_thread
from tests.service.test_api_fuzz import json_values

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
text = st.text(max_size=70)
orders = st.fixed_dictionaries(
    {"customer": st.one_of(text, json_values)},
    optional={
        "items": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"sku": st.one_of(text, json_values)},
                    optional={"qty": st.one_of(st.integers(-5, 1005), json_values)},
                ),
                max_size=22,
            ),
            json_values,
        ),
        "intent_id": st.one_of(text, json_values),
        "extra": json_values,
    },
)
keys = st.one_of(
    st.none(), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
)


@pytest.fixture(scope="module")
def orders_port(redis_server) -> Iterator[int]:
    config = ApiConfig(orders=OrdersConfig(redis_url=redis_server.url, prefix="fuzz:"))
    with serve_in_thread(lambda: create_app(config)) as port:
        yield port


@SETTINGS
@given(body=st.one_of(orders.map(lambda o: json.dumps(o).encode()), st.binary(max_size=200)),
       key=keys)  # fmt: skip
def test_generated_orders_get_201_or_4xx_problem_json(orders_port, body, key):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    status, content_type = send(orders_port, "POST", "/orders", body, headers)
    assert status in (201, 400, 409, 422), (status, body, key)
    if status != 201:
        assert content_type.startswith("application/problem+json")


@SETTINGS
@given(query=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789%&=-+.", max_size=30),
       path=st.sampled_from(["/orders", "/orders/", "/orders/x", "/orders/%00"]))  # fmt: skip
def test_generated_queries_never_5xx(orders_port, query, path):
    status, _ = send(orders_port, "GET", f"{path}?{query}", b"", {})
    assert status < 500, (path, query, status)
