"""The "move" and "reload" faults on compose: a replica recreated with a new IP.

Docker's embedded DNS (127.0.0.11) answers a replica's name (api-1) with the address
of every running container that carries it as a network alias. A move starts a second
container with the same image, command, labels and alias while the first still runs
(so Docker hands it another address), waits until it is ready, then kills and removes
the first: from then on the name answers only the new address, and an nginx that
resolved it once, at start, holds a dead one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from labs.engine.errors import LabError
from labs.engine.topology import compose_file, dockerenv
from labs.engine.topology.containers import published_port
from labs.engine.topology.ports import HOST

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from labs.engine.topology.compose import ComposeTopology


async def move(topology: ComposeTopology, service: str, replica: int | None) -> list[str]:
    """Recreate the replica with a new IP (see the module's doc); returns its name. Its
    published port changes too: the replica's URL in `endpoints` is updated in place."""
    if not topology.variant.nginx.dns or service != topology.variant.nginx.backend:
        raise LabError(f"cannot move {service}: only nginx's backend, found by DNS name")
    old_containers = await asyncio.to_thread(topology.targets, service, replica)
    if len(old_containers) != 1:
        raise LabError(f"cannot move {service}: it must have one replica")
    (old,) = old_containers
    name = old.labels.get(dockerenv.SERVICE_LABEL, old.name)
    assert topology.client is not None
    new = await asyncio.to_thread(_second, topology.client, old, name)
    url = f"http://{HOST}:{published_port(new)}"
    await topology.wait_healthy(name, f"{url}/readyz")
    await asyncio.to_thread(_gone, old)
    if topology.endpoints is not None and service in topology.endpoints.services:
        topology.endpoints.services[service][int(name.rpartition("-")[2]) - 1] = url
    return [name]


def _second(client: docker.DockerClient, old: Container, alias: str) -> Container:
    """A container like `old` (image, command, user, labels, alias) on its network."""
    network = next(iter(old.attrs["NetworkSettings"]["Networks"]))
    config = old.attrs["Config"]
    new = client.containers.run(
        config["Image"],
        command=config["Cmd"],
        user=config.get("User") or compose_file.USER,
        labels=dict(old.labels),
        name=f"{old.name}-moved",
        detach=True,
        network=network,
        networking_config={network: client.api.create_endpoint_config(aliases=[alias])},
        ports={f"{compose_file.SERVICE_PORT}/tcp": (HOST, None)},
    )
    new.reload()
    return new


def _gone(container: Container) -> None:
    """Its host is gone: killed (not drained) and removed, and with it its DNS name."""
    container.kill()
    container.remove(force=True)


async def reload(topology: ComposeTopology) -> list[str]:
    """SIGHUP to nginx (PID 1 of its container): the config is read again and the names
    in its upstream resolved anew."""
    proxy = (await asyncio.to_thread(topology.containers))["nginx"]
    await asyncio.to_thread(proxy.kill, signal="SIGHUP")
    return ["nginx"]
