"""The compose topology's files, without Docker: what gets published, as whom, checked how."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.model.catalog import get_lab
from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.topology import compose_file
from labs.engine.topology.compose import project_name
from tests.conftest import REPO_ROOT

LOAD = LoadSpec(locustfile="synchronized_bursts.py", users=1, spawn_rate=1, duration_s=1)
TWO_TIERS = Variant(
    name="v",
    summary="gateway -> 2 api replicas, redis",
    nginx=NginxSpec(backend="gateway"),
    services=(
        ServiceSpec("api", replicas=2, args={"keepalive-timeout": 1.0}),
        ServiceSpec(
            "gateway",
            module="services.gateway",
            depends_on={"api-url": "api", "redis-url": "redis"},
        ),
    ),
    load=LOAD,
    parts=("redis",),
)


def render(variant: Variant = TWO_TIERS, **kwargs) -> tuple[dict, list[str]]:
    return compose_file.render(
        variant, nginx_conf=Path("/r/nginx.conf"), labels={"lab.run-id": "x"}, **kwargs
    )


def test_one_compose_service_per_replica_and_nginx_upstream_servers():
    document, servers = render()
    assert list(document["services"]) == ["redis", "api-1", "api-2", "gateway-1", "nginx"]
    assert compose_file.services_of(TWO_TIERS) == list(document["services"])
    assert servers == ["gateway-1:8000"]
    gateway = document["services"]["gateway-1"]["command"]
    assert gateway[gateway.index("--api-url") + 1] == "http://api-1:8000,http://api-2:8000"
    assert gateway[gateway.index("--redis-url") + 1] == "redis://redis:6379"
    assert gateway[gateway.index("--host") + 1] == "0.0.0.0"
    assert document["services"]["gateway-1"]["depends_on"] == ["api-1", "api-2", "redis"]
    assert document["services"]["nginx"]["depends_on"] == ["gateway-1"]


def test_a_service_two_options_point_at_depends_on_it_once():
    """An edge gateway whose two downstreams are the same service (deadlines): Compose
    refuses a depends_on list with a name twice."""
    edge = ServiceSpec(
        "gateway",
        module="services.gateway",
        depends_on={"payments-url": "api", "catalog-url": "api"},
    )
    document, _ = render(replace(TWO_TIERS, services=(TWO_TIERS.services[0], edge)))
    assert document["services"]["gateway-1"]["depends_on"] == ["api-1", "api-2"]


def test_every_port_is_published_on_loopback_and_every_service_checked_as_non_root():
    document, _ = render(nginx_port=18080)
    for name, service in document["services"].items():
        assert service["ports"], name
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), name
        assert service["user"] == compose_file.USER and not service["user"].startswith("0"), name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["labels"] == {"lab.run-id": "x"}, name
    assert document["services"]["nginx"]["ports"] == ["127.0.0.1:18080:8080"]
    assert document["networks"]["default"]["labels"] == {"lab.run-id": "x"}


def test_the_file_works_with_compose_v1_and_v2():
    text = compose_file.to_yaml(render()[0])
    assert "version:" not in text and not text.startswith("name:")


def test_dollars_in_arguments_reach_the_service_literally():
    variant = replace(TWO_TIERS, services=(ServiceSpec("api", args={"note": "a$b"}),), parts=())
    variant = replace(variant, nginx=NginxSpec())
    command = render(variant)[0]["services"]["api-1"]["command"]
    assert command[command.index("--note") + 1] == "a$$b"


def test_unknown_backend_or_part_is_a_lab_error():
    with pytest.raises(LabError, match="backend"):
        render(replace(TWO_TIERS, nginx=NginxSpec(backend="nope")))
    with pytest.raises(LabError, match="unknown part"):
        render(replace(TWO_TIERS, parts=("kafka",)))


def test_yaml_writer_round_trips_through_json_compatible_scalars():
    text = compose_file.to_yaml({"a": {"b": ["x", 1, True, {"c": 'it\'s "q"'}], "e": []}})
    assert text.splitlines() == [
        "a:",
        "  b:",
        '    - "x"',
        "    - 1",
        "    - true",
        "    -",
        '      c: "it\'s \\"q\\""',
        "  e: []",
    ]


def test_project_names_are_unique_per_run_and_variant_and_valid_for_compose():
    a = project_name("keepalive-502-20260101-000000-42", "broken")
    assert a == "lab-keepalive-502-20260101-000000-42-broken"
    assert a != project_name("keepalive-502-20260101-000000-43", "broken")
    assert project_name("Lab X", "v.1") == "lab-lab-x-v-1"


def test_every_lab_variant_renders():
    from labs.engine.model.catalog import all_labs

    for lab in all_labs():
        for variant in lab.variants:
            document, servers = render(variant)
            assert servers and "nginx" in document["services"], (lab.name, variant.name)


def test_static_compose_file_publishes_on_loopback_and_builds_from_a_base_image_arg():
    static = (REPO_ROOT / "compose" / "docker-compose.yml").read_text()
    assert not any(line.startswith("version:") for line in static.splitlines())
    ports = [line.strip() for line in static.splitlines() if '"127.0.0.1:' in line]
    assert ports and all(p.startswith('- "127.0.0.1:') for p in ports)
    assert "BASE_IMAGE" in static and "compose/services.Dockerfile" in static
    fixed = get_lab("keepalive-502").variant("fixed")
    assert f'"{fixed.services[0].args["keepalive-timeout"]}"' in static


def test_compose_topology_without_an_engine_is_one_line_and_exit_2(tmp_path):
    env = {
        "PATH": "/nonexistent",
        "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
        "LAB_COMPOSE": "/bin/true",
        "LAB_STATE_DIR": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "labs.engine.cli", "run", "keepalive-502", "--topology", "compose"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Docker engine" in result.stderr, result.stderr
    assert not (tmp_path / "state" / "compose").exists() or not any(
        (tmp_path / "state" / "compose").iterdir()
    )
