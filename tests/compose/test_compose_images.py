"""A compose image built from other sources than the checkout's is refused, so a run
never measures old service code (labs/engine/topology/images.py)."""

from __future__ import annotations

import io

import pytest

from labs.engine.topology import compose_file, images

pytestmark = pytest.mark.compose

PROBE = "lab-test-digest:latest"


def build(docker_client, label: str) -> None:
    """lab-services with another source digest (a label, so no layer is built)."""
    dockerfile = f"FROM {compose_file.SERVICES_IMAGE}\nLABEL {images.LABEL}={label}\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=PROBE, rm=True)


def test_an_image_from_other_sources_is_out_of_date(docker_client, monkeypatch):
    assert images.out_of_date(docker_client, ("services", "nginx")) == [], "make images labels"
    monkeypatch.setitem(images.IMAGES, "services", PROBE)
    try:
        build(docker_client, "0123456789abcdef")
        (stale,) = images.out_of_date(docker_client, ("services",))
        assert stale.startswith(f"{PROBE} was built from other sources (")
        build(docker_client, images.digest("services"))
        assert images.out_of_date(docker_client, ("services",)) == []
    finally:
        docker_client.images.remove(PROBE, force=True)
