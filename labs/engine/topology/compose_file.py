"""A variant as a Compose file: one Compose service per replica (api-1, api-2, ...),
explicit like the local topology, so a fault can stop, kill or pause one replica.

The file has no `version:` key and no top-level `name:` (the project name is given on
the command line), so `docker compose` v2 and Debian's `docker-compose` v1 both read it.
Ports are published on 127.0.0.1 only: nginx on the port asked for or an ephemeral
one, every replica's port 8000 on an ephemeral one (the engine reaches /admin/faults,
/admin/stats and /metrics there, as it does in the local topology).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.spec import ServiceSpec, Variant
from labs.engine.topology.ports import HOST

SERVICES_IMAGE = os.environ.get("LAB_SERVICES_IMAGE", "lab-services:latest")
NGINX_IMAGE = os.environ.get("LAB_NGINX_IMAGE", "lab-nginx:latest")
SERVICE_PORT = 8000
NGINX_PORT = 8080
REDIS_PORT = 6379
DOCKER_DNS = "127.0.0.11"
"""Docker's embedded DNS, in every container on a user-defined network: the "dns" part."""
USER = "10001:10001"
"""The unprivileged `lab` user both Dockerfiles create."""
NGINX_PREFIX = "/var/lib/lab-nginx"
NGINX_CONF = f"{NGINX_PREFIX}/nginx.conf"
STOP_GRACE = "5s"

# bash's /dev/tcp: images have no curl, and this costs far less than starting Python.
_HTTP_PROBE = (
    "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 "
    "&& head -c 12 <&3 | grep -q ' 200'"
)
HEALTH_TIMING = {"interval": "5s", "timeout": "2s", "start_period": "20s", "retries": 3}


@dataclass(frozen=True)
class Part:
    """Infrastructure a variant needs besides its services, as a container."""

    command: tuple[str, ...]
    port: int
    scheme: str
    healthcheck: tuple[str, ...]


PARTS: Mapping[str, Part] = {
    "redis": Part(
        command=(
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/tmp",
        ),  # fmt: skip
        port=REDIS_PORT,
        scheme="redis",
        healthcheck=("CMD", "redis-cli", "-p", str(REDIS_PORT), "ping"),
    ),
}


def replica_name(service: str, replica: int) -> str:
    return ServiceSpec(service).replica_name(replica)


def container_parts(variant: Variant) -> tuple[str, ...]:
    """The variant's parts that run as containers: all but "dns" (Docker's own DNS)."""
    return tuple(part for part in variant.parts if part != "dns")


def services_of(variant: Variant) -> list[str]:
    """The Compose services a variant becomes: parts, one per replica, then nginx."""
    replicas = [replica_name(s.name, r) for s in variant.services for r in range(s.replicas)]
    return [*container_parts(variant), *replicas, "nginx"]


def service_command(spec: ServiceSpec, replica: int, urls: Mapping[str, list[str]]) -> list[str]:
    """The container's argv: what the local topology runs, listening on 0.0.0.0:8000."""
    listen = ["--host", "0.0.0.0", "--port", str(SERVICE_PORT)]
    return ["python", "-m", spec.module, *listen, *spec.options(replica, urls)]


def _literal(text: str) -> str:
    """Compose interpolates `$VAR` in the file; `$$` is a literal dollar."""
    return text.replace("$", "$$")


def http_healthcheck(port: int, path: str) -> dict[str, object]:
    probe = _HTTP_PROBE.format(port=port, path=path)
    return {"test": ["CMD", "bash", "-c", probe], **HEALTH_TIMING}


def render(
    variant: Variant,
    *,
    nginx_conf: Path,
    labels: Mapping[str, str],
    nginx_port: int | None = None,
    replica_ports: bool = True,
) -> tuple[dict[str, object], list[str]]:
    """(the Compose document, the upstream servers for nginx's config)."""
    common = {"user": USER, "labels": dict(labels), "stop_grace_period": STOP_GRACE}
    services: dict[str, dict[str, object]] = {}
    urls: dict[str, list[str]] = {}
    for name in container_parts(variant):
        part = PARTS.get(name)
        if part is None:
            raise LabError(f"unknown part {name!r} (known: {', '.join(PARTS)})")
        services[name] = {
            "image": SERVICES_IMAGE,
            "command": list(part.command),
            **common,
            "healthcheck": {"test": list(part.healthcheck), **HEALTH_TIMING},
            "ports": [f"{HOST}::{part.port}"],
        }
        urls[name] = [f"{part.scheme}://{name}:{part.port}"]
    for spec in variant.services:
        replicas = [replica_name(spec.name, r) for r in range(spec.replicas)]
        for replica, name in enumerate(replicas):
            service: dict[str, object] = {
                "image": SERVICES_IMAGE,
                "command": [_literal(a) for a in service_command(spec, replica, urls)],
                **common,
                "healthcheck": http_healthcheck(SERVICE_PORT, "/readyz"),
            }
            if replica_ports:
                service["ports"] = [f"{HOST}::{SERVICE_PORT}"]
            dependencies = list(dict.fromkeys(d for d in spec.depends_on.values() if d in urls))
            if dependencies:
                service["depends_on"] = _dependency_containers(dependencies, services)
            services[name] = service
        urls[spec.name] = [f"http://{name}:{SERVICE_PORT}" for name in replicas]
    backend = variant.nginx.backend
    if backend not in {s.name for s in variant.services}:
        raise LabError(f"nginx backend {backend!r} is not a service of this variant")
    servers = [u.removeprefix("http://") for u in urls[backend]]
    published = f"{HOST}:{nginx_port}:{NGINX_PORT}" if nginx_port else f"{HOST}::{NGINX_PORT}"
    services["nginx"] = {
        "image": NGINX_IMAGE,
        **common,
        "volumes": [f"{nginx_conf}:{NGINX_CONF}:ro"],
        "ports": [published],
        "depends_on": [s.split(":")[0] for s in servers],
        "healthcheck": {
            "test": ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{NGINX_PORT}"],
            **HEALTH_TIMING,
        },  # fmt: skip
    }
    document = {"services": services, "networks": {"default": {"labels": dict(labels)}}}
    return document, servers


def _dependency_containers(
    dependencies: list[str], services: Mapping[str, dict[str, object]]
) -> list[str]:
    """Compose services that make up the named dependencies (a part, or api-1, api-2...)."""
    found = []
    for dependency in dependencies:
        found += [n for n in services if n == dependency or n.rpartition("-")[0] == dependency]
    return found


# --- a small YAML writer (PyYAML is not a dependency; Compose reads this subset) ---------


def to_yaml(value: object, indent: int = 0) -> str:
    """Block-style YAML; every string double-quoted (JSON strings are valid YAML)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if _is_block(item):
                lines.append(f"{pad}-")
                lines.append(to_yaml(item, indent + 1))
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return "\n".join(lines)


def _is_block(value: object) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value))


def write(document: Mapping[str, object], path: Path, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + to_yaml(document) + "\n")
