"""The api's release (services.api.release): its name on every work response, and a cold
start that serves one request at a time for the first seconds of traffic."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api import __main__ as cli
from services.api.app import ApiConfig, create_app
from services.api.release import ColdStart, ReleaseConfig


async def test_a_cold_process_serves_one_request_at_a_time_then_warms_up() -> None:
    cold = ColdStart(ReleaseConfig("v2", cold_start_s=0.3, cold_start_ms=40))
    began = time.monotonic()
    await asyncio.gather(*(cold.serve() for _ in range(4)))
    assert time.monotonic() - began >= 0.16, "4 x 40 ms, one after the other"
    assert cold.cold_served == 4
    await asyncio.sleep(0.3)
    began = time.monotonic()
    await asyncio.gather(*(cold.serve() for _ in range(4)))
    assert time.monotonic() - began < 0.03 and cold.cold_served == 4


async def test_never_cold_by_default() -> None:
    cold = ColdStart(ReleaseConfig())
    await cold.serve()
    assert cold.first_at is None and cold.snapshot()["cold_served"] == 0


async def test_work_responses_name_the_release_and_stats_report_it() -> None:
    config = ApiConfig(release=ReleaseConfig("v2", cold_start_s=5, cold_start_ms=1))
    async with TestClient(TestServer(create_app(config))) as client:
        response = await client.get("/work")
        assert response.status == 200 and response.headers["X-Release"] == "v2"
        stats = await (await client.get("/admin/stats")).json()
        assert stats["release"] == {
            "name": "v2", "cold_start_s": 5, "cold_start_ms": 1, "cold_served": 1,
        }  # fmt: skip
    async with TestClient(TestServer(create_app(ApiConfig()))) as client:
        assert "X-Release" not in (await client.get("/work")).headers


def test_the_options_set_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.parse_args(["--port", "1", "--release", "v2", "--cold-start-s", "4"])
    assert (args.release, args.cold_start_s, args.cold_start_ms) == ("v2", 4, 50)
    assert cli.main(["--port", "1", "--cold-start-ms", "-1"]) == 2
    assert "--cold-start-ms" in capsys.readouterr().err
