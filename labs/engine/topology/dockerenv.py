"""Docker for the compose topology: the engine, the Compose command, and clean-up.

The docker SDK (7.x) is synchronous: call it via `asyncio.to_thread` from async code.
Never pin an API version: `from_env()` negotiates (Debian's 20.10 engine speaks 1.41).

Every Compose project a run creates is recorded in a marker file under the state
directory (`.lab/compose/<project>.json`, with the owner's pid). A run killed with
SIGKILL leaves its containers running; the next `lab run`, `lab up` or `lab down`
finds the marker of the dead owner and removes the project's containers and networks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from labs.engine.errors import LabError
from labs.engine.runtime.processes import pid_alive
from labs.engine.runtime.state import read_json, state_dir, write_json_atomic

if TYPE_CHECKING:
    import docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
RUN_LABEL = "lab.run-id"
"""Our own label on every container and network a run creates (the tests look for it)."""
DEBIAN_DOCKER = "/usr/bin/docker"
"""Preferred client: Debian's has BuildKit; a newer one earlier on PATH may lack buildx."""
SETUP_HINT = "run `sudo sh scripts/docker-setup.sh` (or install Docker Engine and Compose)"


def docker_client() -> docker.DockerClient:
    """A connected client, or LabError (one line) when no engine answers."""
    try:
        import docker
    except ImportError:  # pragma: no cover - a dependency of the project
        raise LabError("the docker Python package is missing: pip install -e .") from None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # DockerException, requests' errors: all mean "no engine"
        reason = " ".join(str(exc).split())[:160]
        raise LabError(f"no Docker engine answers ({reason}); {SETUP_HINT}") from None
    return client


def engine_available() -> tuple[bool, str]:
    """(True, "") when an engine and a Compose command are usable, else (False, why)."""
    try:
        docker_client().close()
        compose_command()
    except LabError as exc:
        return False, str(exc)
    return True, ""


@functools.cache
def compose_command() -> tuple[str, ...]:
    """`docker compose` (v2 plugin) if the client has it, else `docker-compose` (v1);
    $LAB_COMPOSE overrides, e.g. LAB_COMPOSE=docker-compose."""
    override = os.environ.get("LAB_COMPOSE")
    if override:
        return tuple(shlex.split(override))
    clients = [DEBIAN_DOCKER, shutil.which("docker")]
    for client in dict.fromkeys(c for c in clients if c and os.access(c, os.X_OK)):
        if _succeeds([client, "compose", "version"]):
            return (client, "compose")
    v1 = shutil.which("docker-compose")
    if v1 and _succeeds([v1, "version"]):
        return (v1,)
    raise LabError(
        f"no Docker Compose (neither `docker compose` nor `docker-compose`); {SETUP_HINT}"
    )


def _succeeds(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def missing_images(client: docker.DockerClient, images: Sequence[str]) -> list[str]:
    import docker.errors

    missing = []
    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    return missing


# --- markers and clean-up ----------------------------------------------------------------


def markers_dir() -> Path:
    return state_dir() / "compose"


def write_marker(project: str, run_id: str, compose_file: Path) -> None:
    record = {"project": project, "run_id": run_id, "pid": os.getpid(), "file": str(compose_file)}
    write_json_atomic(markers_dir() / f"{project}.json", record)


def drop_marker(project: str) -> None:
    (markers_dir() / f"{project}.json").unlink(missing_ok=True)


def remove_project(client: docker.DockerClient, project: str) -> int:
    """Force-remove every container and network of a Compose project; return how many."""
    import docker.errors

    removed = 0
    selector = {"label": f"{PROJECT_LABEL}={project}"}
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True, v=True)
            removed += 1
    for network in client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
            removed += 1
    return removed


def sweep_compose(run_id: str | None = None) -> list[str]:
    """Remove the projects of `run_id`, and of any owner that died; return their names.
    Touches Docker only when a marker exists, so local-only users never need an engine."""
    stale = []
    for path in sorted(markers_dir().glob("*.json")):
        record = read_json(path)
        if record is None:
            path.unlink(missing_ok=True)
            continue
        owner_gone = not pid_alive(int(record.get("pid", 0)))
        if record.get("run_id") == run_id or owner_gone:
            stale.append(record)
    if not stale:
        return []
    try:
        client = docker_client()
    except LabError:
        return []  # no engine, no containers to remove; keep the markers for later
    try:
        for record in stale:
            remove_project(client, record["project"])
            drop_marker(record["project"])
    finally:
        client.close()
    return [record["project"] for record in stale]
