"""What the runner needs from a topology, and which one to build.

`local` runs nginx and the services as child processes (no Docker); `compose` runs
the same variant in containers. Both read the same `Variant`: nothing is forked
per topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from labs.engine.model.spec import Lab, Variant
from labs.engine.runtime.processes import ProcessGroup

if TYPE_CHECKING:
    from labs.engine.load.distributed import WorkerContainers

TopologyKind = Literal["local", "compose"]
TOPOLOGIES: tuple[TopologyKind, ...] = ("local", "compose")


@dataclass
class Endpoints:
    nginx_url: str
    services: dict[str, list[str]] = field(default_factory=dict)
    """Service name -> base URL of each replica (admin endpoints live there too)."""
    parts: dict[str, str] = field(default_factory=dict)
    """Part name -> URL, e.g. {"redis": "redis://127.0.0.1:P"}."""

    def to_dict(self) -> dict[str, object]:
        return {"nginx": self.nginx_url, "services": self.services, "parts": self.parts}


class Topology(Protocol):
    async def start(self) -> Endpoints:
        """Bring the variant up; return once everything answers its health check."""
        ...

    async def halt(self, service: str, replica: int | None, action: str) -> list[str]:
        """Stop or kill (compose: also pause/unpause) a service's replicas mid-run."""
        ...

    async def resume(self, service: str, replica: int | None) -> list[str]:
        """Start again the replicas a stop or kill ended; return once they are ready."""
        ...

    async def remove(self, service: str, replica: int | None) -> list[str]:
        """Take replicas out of nginx's upstream and reload nginx (a scale-in)."""
        ...

    async def reweight(self, weights: tuple[int, ...]) -> None:
        """Give nginx's upstream servers these weights (0 = `down`: no new requests)
        and reload nginx: its new workers route by them, the old ones finish theirs."""
        ...

    async def move(self, service: str, replica: int | None) -> list[str]:
        """Move nginx's backend (found by DNS name) to a new address: a new process or
        container there, its name updated, the old one stopped."""
        ...

    async def reload(self) -> list[str]:
        """Reload nginx's config (SIGHUP): names in the upstream are resolved again."""
        ...

    def log_files(self) -> dict[str, Path]:
        """The log files written while it is up, by name (absolute paths)."""
        ...

    def worker_containers(self) -> WorkerContainers | None:
        """Where `--locust-workers` run: None for local processes, else containers."""
        ...

    def stop(self) -> None:
        """Tear everything down and keep the logs; idempotent."""
        ...


def preflight(kind: TopologyKind) -> None:
    """Fail with one line before anything starts when a prerequisite is missing."""
    if kind == "compose":
        from labs.engine.topology import compose

        compose.preflight()
    else:
        from labs.engine.topology import nginx

        nginx.find_nginx()


def make_topology(
    kind: TopologyKind,
    lab: Lab,
    variant: Variant,
    group: ProcessGroup,
    artifacts_dir: Path,
    nginx_port: int | None = None,
) -> Topology:
    if kind == "compose":
        from labs.engine.topology.compose import ComposeTopology

        return ComposeTopology(lab, variant, group.run_id, artifacts_dir, nginx_port)
    from labs.engine.topology.local import LocalTopology

    return LocalTopology(lab, variant, group, artifacts_dir, nginx_port)


def release(kind: TopologyKind, run_id: str) -> None:
    """After a run, on every exit path: remove anything of the run's that is left."""
    if kind == "compose":
        from labs.engine.topology.compose import release_run

        release_run(run_id)
