"""Which sources each compose image is built from, and whether a built image still
matches this checkout. `make images` labels every image with a digest of its sources
(`python -m labs.engine.topology.images ROLE` prints it); the compose topology refuses
an image whose label differs, so a run never measures code older than the checkout.

    python -m labs.engine.topology.images services     # the digest lab-services gets
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from labs.engine.load.distributed import LOCUST_IMAGE
from labs.engine.model.spec import REPO_ROOT
from labs.engine.topology.compose_file import NGINX_IMAGE, SERVICES_IMAGE

if TYPE_CHECKING:
    import docker

LABEL = "lab.source-digest"
SOURCES: Mapping[str, tuple[str, ...]] = {
    "services": ("compose/services.Dockerfile", "compose/services-requirements.txt", "services"),
    "nginx": ("compose/nginx.Dockerfile", "compose/nginx/default.conf"),
    "locust": ("compose/locust.Dockerfile", "compose/locust-requirements.txt"),
}
"""What each image is built from, relative to the repository (folders: every file in them)."""
IMAGES = {"services": SERVICES_IMAGE, "nginx": NGINX_IMAGE, "locust": LOCUST_IMAGE}
REBUILD = "rebuild them: make images (or make images-offline without a registry)"


def _files(root: Path, paths: tuple[str, ...]) -> Iterator[Path]:
    for name in paths:
        path = root / name
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in found:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                yield file


def digest(role: str, root: Path = REPO_ROOT) -> str:
    """sha256 over the role's source files (names and bytes); Locust's image also over
    the host's Locust version, which it is built with."""
    hasher = hashlib.sha256()
    for file in _files(root, SOURCES[role]):
        hasher.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    if role == "locust":
        hasher.update(importlib.metadata.version("locust").encode())
    return hasher.hexdigest()[:16]


def out_of_date(
    client: docker.DockerClient, roles: tuple[str, ...], root: Path = REPO_ROOT
) -> list[str]:
    """A sentence for each built image of `roles` whose label is not its sources' digest
    now (missing images are not checked here)."""
    import docker.errors

    stale = []
    for role in roles:
        try:
            labels = client.images.get(IMAGES[role]).labels or {}
        except docker.errors.ImageNotFound:
            continue
        built = labels.get(LABEL)
        if built is None:
            stale.append(f"{IMAGES[role]} carries no source digest (built before they were)")
        elif built != digest(role, root):
            changed = ", ".join(SOURCES[role])
            stale.append(f"{IMAGES[role]} was built from other sources ({changed} changed)")
    return stale


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SOURCES:
        print(f"usage: python -m labs.engine.topology.images {{{','.join(SOURCES)}}}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(digest(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
