"""Deadline propagation through a real gateway (services.gateway.deadline): what a
downstream is told, fail-fast with too little budget, and retries that stop at the
deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from aiohttp import web

from services.gateway.app import create_app
from services.gateway.config import DownstreamConfig, GatewayConfig
from services.gateway.deadline import DEADLINE_HEADER, DeadlineConfig, parse_budget_ms
from services.gateway.retry.policy import RetryPolicy
from tests.service.gateway.harness import serve


async def _recorder(seen: list[Mapping[str, str]], delay_s: float, status: int = 200):
    async def work(request: web.Request) -> web.Response:
        seen.append(request.headers.copy())
        await asyncio.sleep(delay_s)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_get("/work", work)
    return await serve(app)


async def _gateway(url: str, deadline: DeadlineConfig, policy: RetryPolicy):
    downstream = DownstreamConfig(name="api", urls=(url,), policy=policy)
    return await serve(create_app(GatewayConfig(downstreams=(downstream,), deadline=deadline)))


ON = DeadlineConfig(propagate=True, margin_s=0.05, min_budget_s=0.05)
ONE = RetryPolicy("none", deadline_s=5)


async def test_passes_the_budget_less_the_margin_and_the_request_id() -> None:
    seen: list[Mapping[str, str]] = []
    api, url = await _recorder(seen, 0)
    gw, gw_url = await _gateway(url, ON, ONE)
    try:
        async with aiohttp.ClientSession() as session:
            headers = {DEADLINE_HEADER: "800", "X-Request-Id": "r-1"}
            async with session.get(f"{gw_url}/work", headers=headers) as response:
                assert response.status == 200
    finally:
        await gw.cleanup()
        await api.cleanup()
    told = parse_budget_ms(seen[0][DEADLINE_HEADER])
    assert told is not None and 700 <= told <= 750
    assert seen[0]["X-Request-Id"] == "r-1"


async def test_too_little_budget_fails_fast_without_calling() -> None:
    seen: list[Mapping[str, str]] = []
    api, url = await _recorder(seen, 0)
    gw, gw_url = await _gateway(url, ON, ONE)
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.get(f"{gw_url}/work", headers={DEADLINE_HEADER: "90"}) as r:
                assert r.status == 504
            assert time.monotonic() - started < 0.05
            async with session.get(f"{gw_url}/admin/stats") as r:
                calls = (await r.json())["downstreams"]["api"]["calls"]
    finally:
        await gw.cleanup()
        await api.cleanup()
    assert seen == [] and calls == {"budget_exhausted": 1}


async def test_off_the_header_is_neither_read_nor_forwarded() -> None:
    seen: list[Mapping[str, str]] = []
    api, url = await _recorder(seen, 0.2)
    gw, gw_url = await _gateway(url, DeadlineConfig(), ONE)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gw_url}/work", headers={DEADLINE_HEADER: "50"}) as r,
        ):
            assert r.status == 200
    finally:
        await gw.cleanup()
        await api.cleanup()
    assert DEADLINE_HEADER not in seen[0]


async def test_retries_stop_at_the_callers_deadline() -> None:
    seen: list[Mapping[str, str]] = []
    api, url = await _recorder(seen, 0.1, status=503)
    policy = RetryPolicy("exponential", max_attempts=10, base_s=0.01, cap_s=0.01, deadline_s=5)
    gw, gw_url = await _gateway(url, ON, policy)
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.get(f"{gw_url}/work", headers={DEADLINE_HEADER: "400"}) as r:
                assert r.status in (503, 504)
            took = time.monotonic() - started
    finally:
        await gw.cleanup()
        await api.cleanup()
    assert took < 0.45
    assert 2 <= len(seen) <= 4
    budgets = [parse_budget_ms(h[DEADLINE_HEADER]) or 0 for h in seen]
    assert budgets == sorted(budgets, reverse=True) and budgets[-1] > 50
