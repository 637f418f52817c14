"""What the runner needs from a topology, and which one to build.

`local` runs nginx and the services as child processes (no Docker); `compose` runs
the same variant in containers. Both read the same `Variant`: nothing is forked
per topology.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from labs.engine.local import Endpoints, LocalTopology
from labs.engine.processes import ProcessGroup
from labs.engine.spec import Lab, Variant

TopologyKind = Literal["local", "compose"]
TOPOLOGIES: tuple[TopologyKind, ...] = ("local", "compose")


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

    def log_files(self) -> dict[str, Path]:
        """The log files written while it is up, by name (absolute paths)."""
        ...

    def stop(self) -> None:
        """Tear everything down and keep the logs; idempotent."""
        ...


def preflight(kind: TopologyKind) -> None:
    """Fail with one line before anything starts when a prerequisite is missing."""
    if kind == "compose":
        from labs.engine import compose

        compose.preflight()
    else:
        from labs.engine import nginx

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
        from labs.engine.compose import ComposeTopology

        return ComposeTopology(lab, variant, group.run_id, artifacts_dir, nginx_port)
    return LocalTopology(lab, variant, group, artifacts_dir, nginx_port)


def release(kind: TopologyKind, run_id: str) -> None:
    """After a run, on every exit path: remove anything of the run's that is left."""
    if kind == "compose":
        from labs.engine.compose import release_run

        release_run(run_id)
