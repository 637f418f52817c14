"""Compose-topology tests need a Docker engine, Compose and the lab images.

Without them the tests are skipped with the reason, except in CI (CI set to any true
value: 1, true, yes, ...; see tests/ci.py), where a skipped compose test would prove
nothing: there they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from labs.engine.errors import LabError
from labs.engine.topology import compose, dockerenv
from tests.ci import in_ci

if TYPE_CHECKING:
    import docker


def _unavailable() -> str:
    """Why the compose topology cannot run here ("" when it can)."""
    try:
        compose.preflight()
    except LabError as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="session", autouse=True)
def docker_ready() -> None:
    reason = _unavailable()
    if reason and in_ci():
        pytest.fail(
            f"CI={os.environ['CI']} but the compose topology cannot run: {reason}", pytrace=False
        )
    if reason:
        pytest.skip(f"compose topology unavailable: {reason}")


@pytest.fixture
def docker_client() -> Iterator[docker.DockerClient]:
    client = dockerenv.docker_client()
    yield client
    client.close()


def resources_of(client: docker.DockerClient, pid: int) -> list[str]:
    """Containers and networks a `lab` process with this pid created (by the run-id
    label every one of them carries: the run id ends with the creating pid)."""
    found = []
    selector = {"label": dockerenv.RUN_LABEL}
    for container in client.containers.list(all=True, filters=selector):
        if container.labels.get(dockerenv.RUN_LABEL, "").endswith(f"-{pid}"):
            found.append(f"container {container.name}")
    for network in client.networks.list(filters=selector):
        if (network.attrs.get("Labels") or {}).get(dockerenv.RUN_LABEL, "").endswith(f"-{pid}"):
            found.append(f"network {network.name}")
    return found
