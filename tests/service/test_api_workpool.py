"""The api with its worker pool on (services/api/workpool.py) against a real aiohttp
server: capacity, shedding as 503 problem+json, the work_factor fault, /admin/stats."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from services.api.app import ApiConfig
from services.api.workpool import TIMEOUT_HEADER, PoolConfig
from tests.service.test_api import serve


async def _many(session: aiohttp.ClientSession, url: str, n: int, **kw) -> list[int]:
    async def one() -> int:
        async with session.get(f"{url}/work", **kw) as r:
            await r.read()
            return r.status

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_the_pool_serves_at_its_capacity_and_counts_it():
    runner, url, _ = await serve(ApiConfig(pool=PoolConfig(workers=2, work_ms=50)))
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            assert await _many(session, url, 6) == [200] * 6
            assert time.monotonic() - started >= 0.14  # 6 requests / 2 workers x 50 ms
            async with session.get(f"{url}/admin/stats") as r:
                pool = (await r.json())["workpool"]
    finally:
        await runner.cleanup()
    assert pool["arrivals"] == pool["completed"] == 6 and pool["capacity_per_s"] == 40
    assert pool["queue_max"] >= 3 and sum(pool["completions"]["counts"]) == 6


async def test_a_full_queue_answers_503_problem_json_at_once():
    config = ApiConfig(pool=PoolConfig(workers=1, work_ms=200, queue_limit=1))
    runner, url, _ = await serve(config)
    try:
        async with aiohttp.ClientSession() as session:
            statuses = await _many(session, url, 4)
            async with session.get(f"{url}/admin/stats") as r:
                pool = (await r.json())["workpool"]
    finally:
        await runner.cleanup()
    assert sorted(statuses) == [200, 200, 503, 503]
    assert pool["shed"]["queue_full"] == 2


async def test_work_factor_fault_scales_the_work_and_late_work_is_counted():
    runner, url, _ = await serve(ApiConfig(pool=PoolConfig(workers=1, work_ms=30)))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.put(f"{url}/admin/faults", json={"work_factor": 5}) as r:
                assert r.status == 200 and (await r.json())["work_factor"] == 5
            started = time.monotonic()
            headers = {TIMEOUT_HEADER: "100"}
            assert await _many(session, url, 2, headers=headers) == [200, 200]
            assert time.monotonic() - started >= 0.28
            async with session.put(f"{url}/admin/faults", json={"work_factor": 0.5}) as r:
                assert r.status == 422
            async with session.get(f"{url}/admin/stats") as r:
                pool = (await r.json())["workpool"]
    finally:
        await runner.cleanup()
    assert pool["late"] == 2  # 150 ms and 300 ms of work for a 100 ms timeout


async def test_without_workers_there_is_no_pool():
    runner, url, _ = await serve(ApiConfig())
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/admin/stats") as r:
            assert "workpool" not in await r.json()
    finally:
        await runner.cleanup()
