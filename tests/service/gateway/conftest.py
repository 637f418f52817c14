"""The gateway's service-test fixtures: `topology` (one api) and `stack` (two apis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.api.app import ApiConfig
from services.api.app import create_app as create_api
from services.gateway.app import create_app
from services.gateway.config import DownstreamConfig, GatewayConfig
from tests.service.gateway.harness import FAST, ONE_TRY, Setup, Stack, Topology, serve


@pytest.fixture
async def topology(request) -> AsyncIterator[Topology]:
    """api + gateway; a test picks the gateway's policy with @pytest.mark.parametrize-free
    indirect settings: request.param is a dict of DownstreamConfig overrides."""
    overrides = getattr(request, "param", {})
    api_runner, api_url = await serve(create_api(ApiConfig(replica_id="api-9", seed=1)))
    downstream = DownstreamConfig(name="api", urls=(api_url,), **{"policy": FAST, **overrides})
    gw_runner, gw_url = await serve(
        create_app(GatewayConfig(replica_id="gw-3", downstreams=(downstream,), seed=5))
    )
    async with aiohttp.ClientSession() as session:
        yield Topology(api_url, gw_url, session)
    await gw_runner.cleanup()
    await api_runner.cleanup()


@pytest.fixture
async def stack(request) -> AsyncIterator[Stack]:
    setup: Setup = getattr(request, "param", Setup())
    runners, urls = [], {}
    for name, seed in (("payments", 1), ("catalog", 2)):
        runner, urls[name] = await serve(create_api(ApiConfig(replica_id=f"{name}-1", seed=seed)))
        runners.append(runner)
    downstreams = tuple(
        DownstreamConfig(
            name=name,
            urls=(urls[name],),
            routes=(route,),
            **{"policy": ONE_TRY, **getattr(setup, name)},
        )
        for name, route in (("payments", "/checkout"), ("catalog", "/catalog"))
    )
    config = GatewayConfig(
        downstreams=downstreams,
        pool=setup.pool,  # type: ignore[arg-type]
        shared_max_connections=setup.shared_max_connections,
    )
    gw_runner, gw_url = await serve(create_app(config))
    async with aiohttp.ClientSession() as session:
        yield Stack(urls["payments"], urls["catalog"], gw_url, session)
    await gw_runner.cleanup()
    for runner in runners:
        await runner.cleanup()
