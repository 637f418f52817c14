"""GET /metrics on a real aiohttp server: what the counting middleware records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from services.api.app import ApiConfig, create_app
from services.common import metrics
from services.common.metrics import METRICS


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, keepalive_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    runner, url = await serve(create_app(ApiConfig(seed=1)))
    async with aiohttp.ClientSession() as session:
        yield url, session
    await runner.cleanup()


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[tuple, float]:
    """{(sample name, (sorted label pairs)): value}"""
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_total(samples: dict[tuple, float], method: str, route: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("service", "api"), ("status", status))
    return samples.get(("http_requests_total", labels), 0.0)


async def test_requests_are_counted_by_route_and_status(api):
    url, session = api
    for _ in range(3):
        async with session.get(f"{url}/work") as r:
            assert r.status == 200
    async with session.put(f"{url}/admin/faults", json={"error_status": 503}) as r:
        assert r.status == 200
    async with session.post(f"{url}/work", data=b"x") as r:
        assert r.status == 503
    async with session.get(f"{url}/no/such/path/42") as r:
        assert r.status == 404
    samples = await scrape(session, url)
    assert requests_total(samples, "GET", "/work", "200") == 3
    assert requests_total(samples, "POST", "/work", "503") == 1
    assert requests_total(samples, "PUT", "/admin/faults", "200") == 1
    # unknown paths share one series, so a scanner cannot blow up the label set
    assert requests_total(samples, "GET", "unmatched", "404") == 1
    assert not any("/no/such" in str(key) for key in samples)
    timed = (("method", "GET"), ("route", "/work"), ("service", "api"))
    assert samples[("http_request_duration_seconds_count", timed)] == 3
    assert samples[("http_requests_in_flight", (("service", "api"),))] == 0


async def test_scraping_is_not_counted_as_traffic(api):
    url, session = api
    await scrape(session, url)
    samples = await scrape(session, url)
    assert not any(dict(labels).get("route") == "/metrics" for _, labels in samples)


async def test_in_flight_gauge_counts_requests_being_handled(api):
    url, session = api
    async with session.put(f"{url}/admin/faults", json={"latency_ms": 1500}) as r:
        assert r.status == 200
    in_flight = ("http_requests_in_flight", (("service", "api"),))
    slow = [asyncio.create_task(session.get(f"{url}/work")) for _ in range(2)]
    seen = 0.0
    for _ in range(40):  # both requests are inside the handler within a second
        seen = (await scrape(session, url))[in_flight]
        if seen == 2:
            break
        await asyncio.sleep(0.025)
    assert seen == 2
    for response in await asyncio.gather(*slow):
        response.release()
    assert (await scrape(session, url))[in_flight] == 0


async def test_answers_of_inner_middlewares_are_counted():
    """install() puts its middleware outermost: a rate limiter's 429 is counted."""

    @web.middleware
    async def limiter(request: web.Request, handler):
        if request.path == "/limited":
            return web.Response(status=429)
        return await handler(request)

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[limiter])
    app.router.add_get("/limited", ok)
    installed = metrics.install(app, service="gateway")
    installed.set_breaker_state("api", "open")
    installed.retries.labels("gateway", "api").inc(2)
    assert app[METRICS] is installed
    runner, url = await serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/limited") as r:
                assert r.status == 429
            samples = await scrape(session, url)
    finally:
        await runner.cleanup()
    limited = (("method", "GET"), ("route", "/limited"), ("service", "gateway"), ("status", "429"))
    assert samples[("http_requests_total", limited)] == 1
    assert samples[("breaker_state", (("breaker", "api"), ("service", "gateway")))] == 2
    assert samples[("retries_total", (("service", "gateway"), ("upstream", "api")))] == 2


def test_two_apps_in_one_process_have_separate_registries():
    first, second = create_app(ApiConfig()), create_app(ApiConfig())
    first[METRICS].requests.labels("api", "GET", "/work", "200").inc()
    assert first[METRICS].registry is not second[METRICS].registry
    labels = {"service": "api", "method": "GET", "route": "/work", "status": "200"}
    assert first[METRICS].registry.get_sample_value("http_requests_total", labels) == 1
    assert second[METRICS].registry.get_sample_value("http_requests_total", labels) is None
