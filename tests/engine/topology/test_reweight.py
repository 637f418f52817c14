"""Controllers (labs/engine/topology/steering.py): nginx weights changed mid-run by a
reload (0 = `down`), on a real local topology and on the compose topology against a
stand-in for the docker SDK; per-replica options; a controller's crash recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from labs.engine.errors import LabError
from labs.engine.model.spec import Lab, LoadSpec, NginxSpec, ServiceSpec, Upstream, Variant
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.topology import nginx
from labs.engine.topology.base import Endpoints
from labs.engine.topology.local import LocalTopology
from labs.engine.topology.steering import Steering, run_controller
from tests.engine.topology.test_remove import FakeNginx, compose_topology

VARIANT = Variant(
    name="v",
    summary="v1 live, v2 down",
    nginx=NginxSpec(upstream=Upstream(weights=(1, 0))),
    services=(ServiceSpec("api", replicas=2, replica_args=({"release": "v1"}, {"release": "v2"})),),
    load=LoadSpec("trivial.py", users=1, spawn_rate=1, duration_s=1),
)
LAB = Lab("t", "t", "t", guide=Path("guide.md"), variants=(VARIANT,), checks=())


def test_replica_args_go_to_their_replica_only():
    spec = VARIANT.services[0]
    assert spec.options(0, {})[-2:] == ["--release", "v1"]
    assert spec.options(1, {})[-2:] == ["--release", "v2"]
    assert "--release" not in ServiceSpec("api", replicas=3).options(2, {})


def test_weight_zero_renders_down_and_bad_weights_are_refused():
    spec = nginx.reweighted(VARIANT.nginx, (0, 7))
    assert spec.upstream.weights == (0, 7) and nginx.reweighted(spec, None) is spec
    assert nginx.checked_weights((3, 0), 2) == (3, 0)
    for bad in ((1,), (1, -1), (1, 1001)):
        with pytest.raises(LabError, match="need 2 values"):
            nginx.checked_weights(bad, 2)


async def releases_seen(nginx_url: str, n: int) -> set[str]:
    async with aiohttp.ClientSession() as session:
        seen = set()
        for _ in range(n):
            async with session.get(f"{nginx_url}/work") as response:
                assert response.status == 200
                seen.add(response.headers["X-Release"])
        return seen


async def eventually(nginx_url: str, wanted: set[str]) -> set[str]:
    seen: set[str] = set()
    for _ in range(20):  # the old worker answers what it holds, then exits
        seen = await releases_seen(nginx_url, 10)
        if seen == wanted:
            break
        await asyncio.sleep(0.1)
    return seen


async def test_steering_moves_traffic_by_reload_and_records_it(tmp_path: Path):
    group = ProcessGroup("test-reweight", tmp_path / "logs")
    topology = LocalTopology(LAB, VARIANT, group, tmp_path / "out")
    try:
        endpoints = await topology.start()
        assert " down " in topology.layout.conf.read_text()
        assert await releases_seen(endpoints.nginx_url, 10) == {"v1"}
        (proxy,) = topology.processes("nginx")
        events: list[dict[str, object]] = []
        steering = Steering(topology, endpoints, events)
        await steering.weights((0, 1), "all to v2")
        assert await eventually(endpoints.nginx_url, {"v2"}) == {"v2"}
        assert topology.processes("nginx") == [proxy] and proxy.alive(), "reloaded"
        steering.log("flipped", share=100)
        assert [e["what"] for e in events] == ["fault", "decision"]
        assert events[0]["action"] == "weights" and events[0]["weights"] == [0, 1]
        assert events[0]["label"] == "all to v2" and events[1]["share"] == 100
        stats = await steering.stats("api", 1)
        assert stats["release"]["name"] == "v2"  # type: ignore[index]

        v1_port = endpoints.services["api"][0].rpartition(":")[2]
        await steering.remove("api", 0, "v1 out")
        assert events[-1]["action"] == "remove" and events[-1]["replica"] == 0
        assert f":{v1_port} " not in topology.layout.conf.read_text()

        config = topology.layout.conf.read_text()
        with pytest.raises(LabError, match="need 2 values"):
            await steering.weights((1,), "bad")
        assert topology.layout.conf.read_text() == config and topology.weights == (0, 1)
    finally:
        topology.stop()
        group.stop_all()


async def test_a_crashing_controller_is_recorded_not_lost():
    async def broken(steering: Steering) -> None:
        raise RuntimeError("boom")

    events: list[dict[str, object]] = []
    steering = Steering(None, Endpoints("http://127.0.0.1:1"), events)  # type: ignore[arg-type]
    await run_controller(broken, steering)
    assert events[0]["decision"] == "controller failed"
    assert events[0]["error"] == "RuntimeError: boom"


async def test_compose_reweight_rewrites_tests_and_sighups(tmp_path: Path):
    proxy = FakeNginx()
    topology = compose_topology(tmp_path, proxy)
    await topology.reweight((1, 0, 5))
    text = topology.conf_path.read_text()
    assert "server api-2:8000 down " in text and "server api-3:8000 weight=5 " in text
    assert proxy.signals == ["SIGHUP"]

    refused = FakeNginx(test_exit=1)
    topology = compose_topology(tmp_path / "again", refused)
    before = topology.conf_path.read_text()
    with pytest.raises(LabError, match="no servers"):
        await topology.reweight((1, 1, 1))
    assert topology.conf_path.read_text() == before and topology.weights is None
