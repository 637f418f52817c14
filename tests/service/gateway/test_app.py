"""The gateway app (app, handlers, the retries of its downstream) in front of a real api."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from services.gateway.app import create_app
from services.gateway.config import BudgetConfig, DownstreamConfig, GatewayConfig
from services.gateway.retry.policy import RetryPolicy
from tests.service.gateway.harness import FAST, closed_port, serve


async def test_proxies_work_and_reports_attempts(topology):
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 200
        assert r.headers["X-Attempts"] == "1"
        assert r.headers["X-Gateway"] == "gw-3"
        assert r.headers["X-Replica"] == "api-9"
        assert r.content_type == "application/json"
        assert (await r.json())["method"] == "GET"
    stats = await topology.stats()
    api = stats["downstreams"]["api"]
    assert api["attempts"] == 1 and api["retries"] == 0
    assert api["by_outcome"] == {"200": 1}
    assert stats["responses"] == {"200": 1}


async def test_outage_is_retried_up_to_max_attempts_then_passed_through(topology):
    await topology.faults(outage_s=30)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503
        assert r.headers["X-Attempts"] == "3"
        assert r.content_type == "application/problem+json"
        assert "Retry-After" in r.headers
    api = (await topology.stats())["downstreams"]["api"]
    assert api["by_outcome"] == {"503": 3}
    assert api["retries"] == 2 and api["gave_up_max_attempts"] == 1
    async with topology.session.get(f"{topology.api}/admin/stats") as r:
        assert (await r.json())["arrivals"]["total"] == 3, "the api saw every attempt"


@pytest.mark.parametrize(
    "topology",
    [{"policy": RetryPolicy("full-jitter", max_attempts=20, base_s=0.05, cap_s=0.1, deadline_s=3)}],
    indirect=True,
)
async def test_retries_ride_out_a_short_outage(topology):
    await topology.faults(outage_s=0.3)
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 200
        assert int(r.headers["X-Attempts"]) > 1
    assert 0.25 < time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "topology", [{"policy": RetryPolicy("exponential", 3, 0.01, 0.02, deadline_s=2)}], indirect=True
)
async def test_a_retry_after_beyond_the_deadline_ends_the_call_at_once(topology):
    await topology.faults(outage_s=30)  # the api answers Retry-After: 30
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    assert time.monotonic() - started < 0.5
    assert (await topology.stats())["downstreams"]["api"]["gave_up_deadline"] == 1


async def test_post_is_retried_only_with_an_idempotency_key(topology):
    await topology.faults(outage_s=30)
    async with topology.session.post(f"{topology.gateway}/work", data=b"{}") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    headers = {"Idempotency-Key": "order-42"}
    async with topology.session.post(f"{topology.gateway}/work", data=b"{}", headers=headers) as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "3"
    assert (await topology.stats())["downstreams"]["api"]["not_retried_unsafe"] == 1


async def test_client_errors_are_not_retried(topology):
    await topology.faults(error_status=404)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 404 and r.headers["X-Attempts"] == "1"


@pytest.mark.parametrize(
    "topology", [{"budget": BudgetConfig(ratio=0.0, min_retries_per_s=0.0)}], indirect=True
)
async def test_an_empty_retry_budget_denies_retries(topology):
    await topology.faults(outage_s=30)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    api = (await topology.stats())["downstreams"]["api"]
    assert api["retries_denied_by_budget"] == 1
    assert api["budget"]["requests_in_window"] == 1


@pytest.mark.parametrize(
    "topology",
    [{"policy": RetryPolicy("immediate", max_attempts=2, deadline_s=0.3)}],
    indirect=True,
)
async def test_a_slow_api_is_a_504_within_the_deadline(topology):
    await topology.faults(latency_ms=2000)
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 504
        assert r.content_type == "application/problem+json"
    assert time.monotonic() - started < 1.0
    api = (await topology.stats())["downstreams"]["api"]
    assert api["by_outcome"] == {"timeout": 1}, "the deadline left no time for a second attempt"


async def test_an_unreachable_api_is_a_502_after_retries():
    downstream = DownstreamConfig(
        name="api", urls=(f"http://127.0.0.1:{closed_port()}",), policy=FAST
    )
    runner, url = await serve(create_app(GatewayConfig(downstreams=(downstream,))))
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/work") as r:
            assert r.status == 502
            assert r.headers["X-Attempts"] == "3"
            assert "connect_error" in (await r.json())["detail"]
    finally:
        await runner.cleanup()


async def test_health_readiness_and_stats_shape(topology):
    for path in ("/healthz", "/readyz"):
        async with topology.session.get(f"{topology.gateway}{path}") as r:
            assert r.status == 200
    stats = await topology.stats()
    assert stats["replica"] == "gw-3" and stats["keepalive_timeout_s"] == 75.0
    api = stats["downstreams"]["api"]
    assert api["policy"]["strategy"] == "exponential"
    assert {"in_flight", "calls", "attempts", "retries", "budget"} <= set(api)


async def test_requests_in_flight_when_the_api_crashes_fail_together(topology):
    """The api's outage fails requests already in flight (a crash), all at once."""
    await topology.faults(latency_ms=5000)
    url = f"{topology.api}/work"

    async def one() -> tuple[int, float]:
        async with topology.session.get(url) as r:
            return r.status, time.monotonic()

    pending = [asyncio.create_task(one()) for _ in range(10)]
    await asyncio.sleep(0.3)
    crashed = time.monotonic()
    await topology.faults(outage_s=5)
    answers = await asyncio.gather(*pending)
    assert {status for status, _ in answers} == {503}
    assert max(t for _, t in answers) - crashed < 0.5


async def test_prometheus_metrics_count_gateway_responses(topology):
    for _ in range(3):
        async with topology.session.get(f"{topology.gateway}/work") as r:
            assert r.status == 200
    async with topology.session.get(f"{topology.gateway}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    counted = [
        line for line in text.splitlines()
        if line.startswith("http_requests_total") and 'service="gateway"' in line
        and 'status="200"' in line and "/work" in line
    ]  # fmt: skip
    assert counted and float(counted[0].rsplit(" ", 1)[1]) == 3.0, counted
