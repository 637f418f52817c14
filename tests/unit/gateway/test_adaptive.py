"""The adaptive concurrency limit: its AIMD arithmetic, its history, its options, and the
gateway behind it against a real slow downstream on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from services.gateway import __main__ as cli
from services.gateway.adaptive import AdaptiveConfig, AdaptiveLimit
from services.gateway.app import create_app


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_fast_success_grows_the_limit_by_one_while_half_of_it_is_used() -> None:
    limit = AdaptiveLimit(AdaptiveConfig(initial=4, max_limit=5), Clock())
    for _ in range(3):
        assert limit.try_acquire()
    limit.release(0.1, 200)  # 3 in flight of 4: grows
    assert limit.limit == 5
    limit.release(0.1, 200)
    limit.release(0.1, 200)  # 0 in flight of 5 (< half): unchanged; never above max
    assert limit.limit == 5
    assert (limit.succeeded, limit.dropped) == (3, 0)


@pytest.mark.parametrize("latency_s, status", [(0.6, 200), (0.1, 503), (0.1, 504), (0.1, None)])
def test_a_slow_or_failed_call_shrinks_the_limit_by_the_backoff(
    latency_s: float, status: int | None
) -> None:
    limit = AdaptiveLimit(AdaptiveConfig(initial=10, target_ms=500, backoff=0.5), Clock())
    assert limit.try_acquire()
    limit.release(latency_s, status)
    assert (limit.limit, limit.dropped) == (5, 1)


def test_the_limit_never_falls_below_min_and_rejects_calls_over_it() -> None:
    limit = AdaptiveLimit(AdaptiveConfig(initial=4, min_limit=2, backoff=0.5), Clock())
    for _ in range(4):
        assert limit.try_acquire()
        limit.release(1.0, 200)
    assert limit.limit == 2
    assert limit.try_acquire() and limit.try_acquire()
    assert not limit.try_acquire()
    assert (limit.in_flight, limit.admitted, limit.rejected) == (2, 6, 1)


def test_history_keeps_each_tenth_of_a_second_s_last_limit_and_fills_gaps() -> None:
    clock = Clock(1000.0)
    limit = AdaptiveLimit(AdaptiveConfig(initial=10, backoff=0.5), clock)
    assert limit.try_acquire()
    clock.now = 1000.05
    limit.release(1.0, 200)  # same bucket: 10 -> 5
    clock.now = 1000.35
    assert limit.try_acquire()
    limit.release(1.0, 200)  # three buckets later: 2 (int of 2.5)
    history = limit.snapshot()["history"]
    assert history == {"bucket_s": 0.1, "start_epoch_s": 1000.0, "limits": [5, 5, 5, 2]}
    assert (limit.lowest, limit.highest) == (2, 10)


@pytest.mark.parametrize(
    "settings",
    [
        {"initial": 0},
        {"min_limit": 5, "initial": 4},
        {"initial": 300},
        {"target_ms": 0},
        {"backoff": 1.0},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="adaptive limit"):
        AdaptiveConfig(**settings)


def test_options_build_the_config_and_bad_ones_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--port", "8000", "--api-url", "http://127.0.0.1:1"]
    off = cli.build_config(cli.parse_args(base))
    assert off.adaptive is None
    on = cli.build_config(cli.parse_args([*base, "--adaptive-limit", "on", "--adaptive-max", "50"]))
    assert on.adaptive == AdaptiveConfig(max_limit=50)
    assert cli.main([*base, "--adaptive-limit", "on", "--adaptive-backoff", "2"]) == 2
    assert "adaptive limit: backoff" in capsys.readouterr().err


GATE = web.AppKey("gate", asyncio.Event)


async def slow(request: web.Request) -> web.Response:
    await request.app[GATE].wait()
    return web.Response(text="done")


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A gateway with a limit of 2 (it cannot grow: max 2) in front of a gated api."""
    gate = asyncio.Event()
    api = web.Application()
    api[GATE] = gate
    api.router.add_get("/work", slow)
    runners = []
    urls = []
    for app in (api, None):
        if app is None:
            args = cli.parse_args(
                [
                    "--port", "1", "--api-url", urls[0], "--adaptive-limit", "on",
                    "--adaptive-initial", "2", "--adaptive-min", "1", "--adaptive-max", "2",
                ]
            )  # fmt: skip
            app = create_app(cli.build_config(args))
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        urls.append(f"http://{host}:{port}")
        runners.append(runner)
    yield urls[1], gate
    gate.set()
    for runner in reversed(runners):
        await runner.cleanup()


async def test_the_gateway_refuses_calls_over_the_limit_at_once_and_shows_it(
    gateway: tuple[str, asyncio.Event],
) -> None:
    url, gate = gateway
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def get(path: str) -> tuple[int, str]:
            async with session.get(path) as response:
                return response.status, await response.text()

        holders = [asyncio.create_task(get("/work")) for _ in range(2)]
        for _ in range(100):
            stats = await (await session.get("/admin/stats")).json()
            if stats["adaptive_limit"]["in_flight"] == 2:
                break
            await asyncio.sleep(0.01)
        async with asyncio.timeout(1.0):
            status, body = await get("/work")
        assert status == 503 and "adaptive concurrency limit" in body
        gate.set()
        assert [s for s, _ in await asyncio.gather(*holders)] == [200, 200]
        limit = (await (await session.get("/admin/stats")).json())["adaptive_limit"]
    assert {k: limit[k] for k in ("limit", "in_flight", "admitted", "rejected", "succeeded")} == {
        "limit": 2,
        "in_flight": 0,
        "admitted": 2,
        "rejected": 1,
        "succeeded": 2,
    }
    assert limit["history"]["limits"]
