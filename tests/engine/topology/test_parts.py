"""The engine parts the rate-limit lab added: Redis as a topology part, stop/kill faults,
and "start" bringing a killed replica back, on a real topology (nginx, api replicas with
the Redis limiter, redis-server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from labs.engine.errors import LabError
from labs.engine.model.spec import FaultStep, Lab, LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.runtime.processes import ProcessGroup, pid_alive, processes_with_run_id
from labs.engine.topology.faults import apply_faults
from labs.engine.topology.local import LocalTopology

VARIANT = Variant(
    name="v",
    summary="redis part",
    nginx=NginxSpec(),
    services=(
        ServiceSpec(
            "api",
            replicas=2,
            args={"ratelimit": "redis", "ratelimit-rate": 1, "ratelimit-burst": 1},
            depends_on={"redis-url": "redis"},
        ),
    ),
    load=LoadSpec("tenants.py", users=1, spawn_rate=1, duration_s=1),
    parts=("redis",),
)
LAB = Lab("t", "t", "t", guide=Path("guide.md"), variants=(VARIANT,), checks=())


async def statuses(url: str, n: int) -> list[int]:
    async with aiohttp.ClientSession() as session:
        out = []
        for _ in range(n):
            async with session.get(f"{url}/work", headers={"X-API-Key": "k"}) as response:
                out.append(response.status)
        return out


async def test_redis_part_starts_first_is_shared_and_can_be_stopped_mid_run(tmp_path):
    group = ProcessGroup("test-redis-part", tmp_path / "logs")
    topology = LocalTopology(LAB, VARIANT, group, tmp_path / "out")
    try:
        endpoints = await topology.start()
        redis_url = endpoints.parts["redis"]
        assert redis_url.startswith("redis://127.0.0.1:")
        assert set(endpoints.services) == {"api"}, "a part is not a service (no /admin/stats)"
        assert endpoints.to_dict()["parts"] == {"redis": redis_url}
        (redis,) = topology.processes("redis")
        assert redis.pid in processes_with_run_id("test-redis-part"), "carries LAB_RUN_ID"
        # both replicas share one limit through Redis: burst 1, then 429s from either
        assert await statuses(endpoints.nginx_url, 4) == [200, 429, 429, 429]

        events: list[dict[str, object]] = []
        steps = (FaultStep(at_s=0, service="redis", action="stop"),)
        await apply_faults(steps, endpoints, events, topology)
        assert not redis.alive()
        assert events[0]["action"] == "stop" and events[0]["processes"] == ["redis"]
        assert "settings" not in events[0]
        # the limiter fails open: every request is admitted
        assert await statuses(endpoints.nginx_url, 4) == [200] * 4

        kill = (FaultStep(at_s=0, service="api", replica=1, action="kill"),)
        await apply_faults(kill, endpoints, events, topology)
        assert [c.alive() for c in topology.processes("api")] == [True, False]
        assert topology.processes("api")[1].process.returncode == -9
        with pytest.raises(LabError, match="no process for api replica 5"):
            topology.processes("api", 5)

        # "start" brings the killed replica back on its port, ready, with the same options
        killed_url = endpoints.services["api"][1]
        start = (FaultStep(at_s=0, service="api", replica=1, action="start"),)
        await apply_faults(start, endpoints, events, topology)
        assert [c.alive() for c in topology.processes("api")] == [True, True]
        assert events[-1]["action"] == "start" and events[-1]["processes"] == ["api-2"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{killed_url}/readyz") as response,
        ):
            assert (await response.json())["replica"] == "api-2"
        with pytest.raises(LabError, match="no replica of it has stopped"):
            await topology.resume("api", 1)
        with pytest.raises(LabError, match="only services"):
            await topology.resume("redis", None)
    finally:
        topology.stop()
        group.stop_all()
    assert not any(pid_alive(c.pid) for c in group.children)


async def test_stop_and_kill_need_the_topology():
    with pytest.raises(LabError, match="needs the topology"):
        await asyncio.wait_for(
            apply_faults((FaultStep(0, "redis", action="kill"),), None, []),  # type: ignore[arg-type]
            5,
        )
