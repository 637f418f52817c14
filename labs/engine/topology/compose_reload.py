"""The compose topology's nginx reloaded mid-run with a re-rendered config: the mounted
file rewritten in place (the bind mount follows it), `nginx -t` inside the container,
then SIGHUP to nginx (its PID 1). Used by `remove` (a scale-in) and `reweight`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from labs.engine.errors import LabError
from labs.engine.topology import compose_file, nginx

if TYPE_CHECKING:
    from labs.engine.topology.compose import ComposeTopology


def reload_nginx(topology: ComposeTopology) -> None:
    """Rewrite the config, test it in the container, SIGHUP nginx; on a rejection the
    previous config is put back (LabError with nginx's own message)."""
    previous = topology.conf_path.read_text()
    topology.conf_path.write_text(topology.nginx_config())
    proxy = topology.containers()["nginx"]
    prefix = compose_file.NGINX_PREFIX
    code, output = proxy.exec_run(
        ["nginx", "-t", "-q", "-p", prefix, "-e", f"{prefix}/error.log",
         "-c", compose_file.NGINX_CONF]
    )  # fmt: skip
    if code != 0:
        topology.conf_path.write_text(previous)
        raise LabError(nginx.rejected(topology.conf_path, output.decode(errors="replace"), code))
    proxy.kill(signal="SIGHUP")


async def reweight(topology: ComposeTopology, weights: tuple[int, ...]) -> None:
    """Mid-run, new upstream weights (0 = down), then a reload."""
    before = topology.weights
    topology.weights = nginx.checked_weights(weights, len(topology.servers))
    try:
        await asyncio.to_thread(reload_nginx, topology)
    except LabError:
        topology.weights = before
        raise
