"""The rate limiters against a real redis-server and real aiohttp servers (no mocks).

Redis comes from tests/service/conftest.py (`redis_server`, `private_redis`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.api.app import ApiConfig, create_app
from services.api.ratelimit import (
    LimiterUnavailable,
    RateLimitConfig,
    RedisLimiter,
)

HOUR = 1 / 3600  # a rate so low that no token comes back during a test


@pytest.fixture
async def limiter_factory(redis_server) -> AsyncIterator:
    made: list[RedisLimiter] = []

    def make(rate: float, burst: int, prefix: str) -> RedisLimiter:
        limiter = RedisLimiter.from_url(redis_server.url, rate, burst)
        limiter.prefix = prefix
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


# --- GCRA on Redis -------------------------------------------------------------------------


async def test_gcra_admits_the_burst_then_exactly_the_rate(limiter_factory):
    """Time injected through the script's optional ARGV[3] ("now" in microseconds)."""
    limiter = limiter_factory(rate=10, burst=3, prefix="t-rate:")
    t0 = 1_000_000_000_000
    first = [await limiter.acquire("a", now_us=t0) for _ in range(4)]
    assert [d.allowed for d in first] == [True, True, True, False]
    assert first[3].retry_after_s == pytest.approx(0.1)  # one emission interval at 10/s
    assert not (await limiter.acquire("a", now_us=t0 + 99_999)).allowed
    assert (await limiter.acquire("a", now_us=t0 + 100_000)).allowed
    # sustained overload for 10 s: one request per 100 ms gets through
    admitted = 0
    for step in range(1, 1001):
        admitted += (await limiter.acquire("a", now_us=t0 + 100_000 + step * 10_000)).allowed
    assert admitted == 100
    # another tenant is untouched
    assert (await limiter.acquire("b", now_us=t0)).allowed


async def test_gcra_uses_redis_clock_by_default(limiter_factory):
    limiter = limiter_factory(rate=HOUR, burst=5, prefix="t-clock:")
    decisions = [await limiter.acquire("a") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[5].retry_after_s == pytest.approx(3600, rel=0.01)


@pytest.mark.parametrize("burst", [1, 7, 40])
async def test_concurrent_requests_from_many_replicas_never_over_admit(redis_server, burst):
    """400 requests at once, spread over 4 clients (4 'replicas', 64 connections each):
    exactly `burst` are admitted, never more, because the script is atomic."""
    limiters = [RedisLimiter.from_url(redis_server.url, HOUR, burst, 10) for _ in range(4)]
    for limiter in limiters:
        limiter.prefix = f"t-atomic-{burst}:"
    try:
        for round_ in range(3):
            tenant = f"tenant-{round_}"
            decisions = await asyncio.gather(*(limiters[i % 4].acquire(tenant) for i in range(400)))
            assert sum(d.allowed for d in decisions) == burst
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_unreachable_redis_is_unavailable_fast_then_skipped_for_a_cooldown(private_redis):
    limiter = RedisLimiter.from_url(private_redis.url, rate=10, burst=1)
    try:
        assert (await limiter.acquire("a")).allowed
        private_redis.stop()
        started = time.monotonic()
        with pytest.raises(LimiterUnavailable, match="redis"):
            await limiter.acquire("a")
        with pytest.raises(LimiterUnavailable, match="failed recently"):
            await limiter.acquire("a")  # within the cooldown: Redis is not even asked
        assert time.monotonic() - started < 0.5
    finally:
        await limiter.close()


# --- the api with the limiter middleware ---------------------------------------------------


async def serve(config: ApiConfig) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(config), keepalive_timeout=75)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def get_work(session: aiohttp.ClientSession, url: str, key: str | None = None):
    headers = {"X-API-Key": key} if key else {}
    async with session.get(f"{url}/work", headers=headers) as response:
        return response.status, response.headers, await response.read()


async def test_local_limit_answers_429_problem_json_with_retry_after():
    config = ApiConfig(ratelimit=RateLimitConfig("local", rate=HOUR, burst=2))
    runner, url = await serve(config)
    try:
        async with aiohttp.ClientSession() as session:
            noisy = [await get_work(session, url, "noisy") for _ in range(3)]
            assert [s for s, _, _ in noisy] == [200, 200, 429]
            _, headers, body = noisy[2]
            assert headers["Content-Type"].startswith("application/problem+json")
            assert int(headers["Retry-After"]) >= 3500
            assert b'"title": "Too Many Requests"' in body and b"key:noisy" in body
            assert (await get_work(session, url, "quiet"))[0] == 200
            # no key: limited by client address (X-Real-IP from nginx, else the peer)
            assert [(await get_work(session, url))[0] for _ in range(3)] == [200, 200, 429]
            for path in ("/healthz", "/readyz", "/admin/stats"):
                async with session.get(f"{url}{path}") as response:
                    assert response.status == 200, path
            async with session.get(f"{url}/admin/ratelimit") as response:
                counts = (await response.json())["tenants"]
            assert counts["key:noisy"] == {"allowed": 2, "limited": 1}
            assert counts["ip:127.0.0.1"] == {"allowed": 2, "limited": 1}
    finally:
        await runner.cleanup()


async def test_redis_limit_is_shared_by_replicas(redis_server):
    config = RateLimitConfig("redis", rate=HOUR, burst=4, redis_url=redis_server.url)
    runners = [await serve(ApiConfig(replica_id=f"api-{i}", ratelimit=config)) for i in (1, 2)]
    try:
        async with aiohttp.ClientSession() as session:
            statuses = [
                (await get_work(session, runners[i % 2][1], "shared-tenant"))[0] for i in range(10)
            ]
        assert statuses.count(200) == 4 and statuses.count(429) == 6
    finally:
        for runner, _ in runners:
            await runner.cleanup()


@pytest.mark.parametrize(("on_error", "expected"), [("open", 200), ("closed", 503)])
async def test_redis_down_fails_the_chosen_way(private_redis, on_error, expected):
    config = RateLimitConfig("redis", rate=HOUR, burst=1, redis_url=private_redis.url)
    config.on_error = on_error
    runner, url = await serve(ApiConfig(ratelimit=config))
    try:
        async with aiohttp.ClientSession() as session:
            assert [(await get_work(session, url, "k"))[0] for _ in range(2)] == [200, 429]
            private_redis.stop()
            statuses = [(await get_work(session, url, "k"))[0] for _ in range(5)]
            assert statuses == [expected] * 5
    finally:
        await runner.cleanup()


def test_api_refuses_a_redis_limiter_without_url():
    result = subprocess.run(
        [sys.executable, "-m", "services.api", "--port", "1", "--ratelimit", "redis"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "needs --redis-url" in result.stderr
