"""Topology faults on compose: a killed replica's container comes back with "start",
nginx reaches it again by name, and the engine follows its new published port."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from labs.engine.errors import LabError
from labs.engine.model.spec import (
    FaultStep,
    Lab,
    LoadSpec,
    NginxSpec,
    ServiceSpec,
    Upstream,
    Variant,
)
from labs.engine.topology.compose import ComposeTopology
from labs.engine.topology.faults import apply_faults

pytestmark = pytest.mark.compose

VARIANT = Variant(
    name="v",
    summary="two replicas",
    nginx=NginxSpec(upstream=Upstream(max_fails=1, fail_timeout="1s")),
    services=(ServiceSpec("api", replicas=2),),
    load=LoadSpec("trivial.py", users=1, spawn_rate=1, duration_s=1),
)
LAB = Lab("t", "t", "t", guide=Path("guide.md"), variants=(VARIANT,), checks=())


async def replicas_seen(nginx_url: str, n: int) -> set[str]:
    async with aiohttp.ClientSession() as session:
        seen = set()
        for _ in range(n):
            async with session.get(f"{nginx_url}/work") as response:
                if response.status == 200:
                    seen.add(response.headers["X-Replica"])
        return seen


async def test_killed_replica_starts_again_and_gets_traffic(tmp_path):
    topology = ComposeTopology(LAB, VARIANT, f"t{uuid.uuid4().hex[:8]}", tmp_path, None)
    try:
        endpoints = await topology.start()
        assert await replicas_seen(endpoints.nginx_url, 6) == {"api-1", "api-2"}
        events: list[dict[str, object]] = []
        kill = FaultStep(0, "api", replica=1, action="kill")
        await apply_faults((kill,), endpoints, events, topology)
        assert await replicas_seen(endpoints.nginx_url, 6) == {"api-1"}

        await apply_faults(
            (FaultStep(0, "api", replica=1, action="start"),), endpoints, events, topology
        )
        assert events[-1]["processes"] == ["api-2"]
        new_url = endpoints.services["api"][1]  # Docker published it anew
        async with aiohttp.ClientSession() as session, session.get(f"{new_url}/readyz") as reply:
            assert (await reply.json())["replica"] == "api-2"
        # nginx tries the replica again once fail_timeout (1 s) has passed on its clock of
        # whole seconds, so up to 2 s after the failure it recorded.
        seen: set[str] = set()
        for _ in range(20):
            seen |= await replicas_seen(endpoints.nginx_url, 4)
            if seen == {"api-1", "api-2"}:
                break
            await asyncio.sleep(0.25)
        assert seen == {"api-1", "api-2"}
        with pytest.raises(LabError, match="no container of it has stopped"):
            await topology.resume("api", 1)
    finally:
        await asyncio.to_thread(topology.stop)
