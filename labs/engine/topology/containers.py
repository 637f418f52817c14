"""Docker containers of a compose run: their published ports, their logs on the way
down. The docker SDK is synchronous: call these from a thread in async code."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from labs.engine.errors import StartupError
from labs.engine.topology import compose_file
from labs.engine.topology.ports import HOST

if TYPE_CHECKING:
    from docker.models.containers import Container

STOP_TIMEOUT_S = 5


def save_logs(containers: Mapping[str, Container], log_dir: Path, nginx_dir: Path) -> None:
    """Stop nginx first (its logs complete), save every container's output to
    `log_dir/<name>.log` and nginx's error and access logs to `nginx_dir`."""
    import docker.errors

    for container in containers.values():
        if container.status == "paused":  # `down` cannot stop a frozen container
            with contextlib.suppress(docker.errors.APIError):
                container.unpause()
    if "nginx" in containers:
        with contextlib.suppress(docker.errors.APIError):
            containers["nginx"].stop(timeout=STOP_TIMEOUT_S)
    for name, container in containers.items():
        with contextlib.suppress(docker.errors.APIError):
            (log_dir / f"{name}.log").write_bytes(container.logs())
    if "nginx" in containers:
        copy_nginx_logs(containers["nginx"], nginx_dir)


def copy_nginx_logs(container: Container, target: Path) -> None:
    import docker.errors

    target.mkdir(parents=True, exist_ok=True)
    for name in ("error.log", "access.log"):
        try:
            stream, _ = container.get_archive(f"{compose_file.NGINX_PREFIX}/{name}")
        except docker.errors.NotFound:
            continue
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile(name)
            if member is not None:
                (target / name).write_bytes(member.read())


def published_port(container: Container) -> int:
    """The host port of the container's one published port (bound on 127.0.0.1)."""
    ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    for bindings in ports.values():
        for binding in bindings or ():
            if binding.get("HostIp") == HOST:
                return int(binding["HostPort"])
    raise StartupError(f"{container.name} has no port published on {HOST}")


def replica_of(name: str, service: str) -> bool:
    prefix, _, index = name.rpartition("-")
    return prefix == service and index.isdigit()


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
