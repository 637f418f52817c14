"""The gateway's settings (services/gateway/config.py): checked when built, by any caller."""

from __future__ import annotations

import pytest

from services.gateway.config import BudgetConfig, DownstreamConfig, GatewayConfig, Timeouts
from services.gateway.retry.budget import RetryBudget

URLS = ("http://127.0.0.1:1",)


def test_an_attempt_timeout_gives_every_part() -> None:
    timeout = Timeouts(connect_s=0.5, read_s=None).client_timeout()
    assert (timeout.total, timeout.connect, timeout.sock_read) == (None, 0.5, None)


def test_a_budget_config_builds_the_budget_it_describes() -> None:
    budget = BudgetConfig(ratio=0.5, min_retries_per_s=2.0, window_s=5.0).build()
    assert isinstance(budget, RetryBudget)
    assert (budget.ratio, budget.min_retries_per_s, budget.window_s) == (0.5, 2.0, 5.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ratio": -1}, "ratio must be a finite number >= 0"),
        ({"min_retries_per_s": "1"}, "min_retries_per_s must be a number"),
        ({"window_s": 0}, "window_s must be > 0"),
    ],
)
def test_a_budget_config_is_checked_like_the_budget(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BudgetConfig(**settings)
    with pytest.raises(ValueError, match=message):
        RetryBudget(**settings)


def test_a_bulkhead_is_made_only_with_max_in_flight() -> None:
    assert DownstreamConfig("api", URLS).bulkhead_config() is None
    bulkhead = DownstreamConfig("api", URLS, max_connections=0, max_in_flight=4).bulkhead_config()
    assert bulkhead is not None
    assert (bulkhead.max_connections, bulkhead.max_in_flight, bulkhead.name) == (4, 4, "api")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"urls": ()}, "downstream api: at least one URL"),
        ({"max_connections": -1}, "max_connections must be >= 0"),
        ({"max_in_flight": -1}, "max_in_flight must be >= 0"),
        ({"max_connections": 2, "max_in_flight": 3}, r"max_connections \(2\) must be >= max_in"),
    ],
)
def test_bad_downstream_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DownstreamConfig(**{"name": "api", "urls": URLS, **settings})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pool": "pooled"}, "pool must be one of per-downstream, shared"),
        ({"shared_max_connections": -1}, "shared_max_connections must be >= 0"),
        (
            {"downstreams": (DownstreamConfig("api", URLS), DownstreamConfig("api", URLS))},
            "downstream names must be unique",
        ),
        (
            {"pool": "shared", "downstreams": (DownstreamConfig("api", URLS, max_in_flight=2),)},
            "a bulkhead needs a pool of its own, not the shared one: api",
        ),
    ],
)
def test_bad_gateway_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GatewayConfig(**settings)
