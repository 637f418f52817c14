"""The "remove" fault (a scale-in): a replica taken out of nginx's upstream by re-rendering
the config without it and reloading nginx, on a real local topology, and the compose
topology's version of it against a stand-in for the docker SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

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
from labs.engine.runtime.processes import ProcessGroup, pid_alive
from labs.engine.topology import compose_file, dockerenv, nginx
from labs.engine.topology.compose import ComposeTopology
from labs.engine.topology.faults import apply_faults
from labs.engine.topology.local import LocalTopology

VARIANT = Variant(
    name="v",
    summary="three weighted replicas",
    nginx=NginxSpec(upstream=Upstream(weights=(1, 2, 3))),
    services=(ServiceSpec("api", replicas=3),),
    load=LoadSpec("trivial.py", users=1, spawn_rate=1, duration_s=1),
)
LAB = Lab("t", "t", "t", guide=Path("guide.md"), variants=(VARIANT,), checks=())


def test_without_servers_keeps_each_servers_own_weight():
    spec, servers = nginx.without_servers(VARIANT.nginx, ["a:1", "b:2", "c:3"], {1})
    assert servers == ["a:1", "c:3"] and spec.upstream.weights == (1, 3)
    spec, servers = nginx.without_servers(NginxSpec(), ["a:1", "b:2"], set())
    assert servers == ["a:1", "b:2"] and spec.upstream.weights == ()
    with pytest.raises(LabError, match="every server"):
        nginx.without_servers(NginxSpec(), ["a:1"], {0})


async def replicas_seen(nginx_url: str, n: int) -> set[str]:
    async with aiohttp.ClientSession() as session:
        seen = set()
        for _ in range(n):
            async with session.get(f"{nginx_url}/work") as response:
                assert response.status == 200
                seen.add(response.headers["X-Replica"])
        return seen


async def test_remove_reloads_nginx_without_the_replica(tmp_path: Path):
    group = ProcessGroup("test-scale-in", tmp_path / "logs")
    topology = LocalTopology(LAB, VARIANT, group, tmp_path / "out")
    try:
        endpoints = await topology.start()
        assert await replicas_seen(endpoints.nginx_url, 12) == {"api-1", "api-2", "api-3"}
        (proxy,) = topology.processes("nginx")
        removed_port = endpoints.services["api"][1].rpartition(":")[2]

        events: list[dict[str, object]] = []
        remove = (FaultStep(at_s=0, service="api", replica=1, action="remove"),)
        await apply_faults(remove, endpoints, events, topology)
        assert events[0]["action"] == "remove" and events[0]["processes"] == ["api-2"]
        assert 0 <= float(events[0]["took_s"]) < 5  # type: ignore[arg-type]
        config = topology.layout.conf.read_text()
        assert f":{removed_port} " not in config
        assert "weight=1 " in config and "weight=3 " in config and "weight=2 " not in config

        seen: set[str] = set()
        for _ in range(20):  # the old worker answers what it holds, then exits
            seen = await replicas_seen(endpoints.nginx_url, 12)
            if seen == {"api-1", "api-3"}:
                break
            await asyncio.sleep(0.1)
        assert seen == {"api-1", "api-3"}
        assert topology.processes("nginx") == [proxy] and proxy.alive(), "reloaded, not restarted"
        assert all(c.alive() for c in topology.processes("api")), "the replica keeps running"

        with pytest.raises(LabError, match="upstream is api"):
            await topology.remove("nginx", None)
        with pytest.raises(LabError, match="every server"):
            await topology.remove("api", None)
        assert topology.removed == {1}, "a refused remove changes nothing"
        assert topology.layout.conf.read_text() == config
    finally:
        topology.stop()
        group.stop_all()
    assert not any(pid_alive(c.pid) for c in group.children)


class FakeNginx:
    def __init__(self, test_exit: int = 0) -> None:
        self.labels = {dockerenv.SERVICE_LABEL: "nginx"}
        self.name = "nginx"
        self.status = "running"
        self.test_exit = test_exit
        self.commands: list[list[str]] = []
        self.signals: list[str] = []

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        self.commands.append(argv)
        return self.test_exit, b"nginx: [emerg] no servers" if self.test_exit else b""

    def kill(self, signal: str) -> None:
        self.signals.append(signal)


def compose_topology(tmp_path: Path, proxy: FakeNginx) -> ComposeTopology:
    topology = ComposeTopology(LAB, VARIANT, "t", tmp_path)
    replicas = [
        SimpleNamespace(labels={dockerenv.SERVICE_LABEL: f"api-{i}"}, name=f"api-{i}")
        for i in (1, 2, 3)
    ]
    containers = SimpleNamespace(list=lambda **_: [*replicas, proxy])
    topology.client = SimpleNamespace(containers=containers)  # type: ignore[assignment]
    _, topology.servers = compose_file.render(VARIANT, nginx_conf=topology.conf_path, labels={})
    topology.conf_path.parent.mkdir(parents=True)
    topology.conf_path.write_text(topology.nginx_config())
    return topology


async def test_compose_remove_rewrites_the_mounted_config_tests_and_sighups(tmp_path: Path):
    proxy = FakeNginx()
    topology = compose_topology(tmp_path, proxy)
    assert "server api-2:" in topology.conf_path.read_text()
    inode = topology.conf_path.stat().st_ino
    assert await topology.remove("api", 1) == ["api-2"]
    text = topology.conf_path.read_text()
    assert "server api-2:" not in text and "server api-3:8000 weight=3 " in text
    assert topology.conf_path.stat().st_ino == inode, "rewritten in place: the mount follows"
    assert proxy.commands[0][:3] == ["nginx", "-t", "-q"]
    assert compose_file.NGINX_CONF in proxy.commands[0]
    assert proxy.signals == ["SIGHUP"]


async def test_compose_remove_keeps_the_config_nginx_rejects(tmp_path: Path):
    proxy = FakeNginx(test_exit=1)
    topology = compose_topology(tmp_path, proxy)
    before = topology.conf_path.read_text()
    with pytest.raises(LabError, match="no servers"):
        await topology.remove("api", 0)
    assert topology.conf_path.read_text() == before and topology.removed == set()
    assert proxy.signals == []
