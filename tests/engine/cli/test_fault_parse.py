"""`lab fault`'s command line and target names, without a topology."""

from __future__ import annotations

import pytest

from labs.engine.cli.faults import parse_setting, request_of
from labs.engine.cli.parser import build_parser
from labs.engine.errors import LabError
from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.runtime.control import Target, resolve_target


def parsed(*argv: str) -> dict[str, object]:
    return request_of(build_parser().parse_args(["fault", *argv]))


def test_command_lines_become_control_requests():
    assert parsed("api", "latency_ms=200", "error_rate=0.5") == {
        "action": "settings", "target": "api",
        "settings": {"latency_ms": 200, "error_rate": 0.5},
    }  # fmt: skip
    assert parsed("api-2", "--kill") == {"action": "kill", "target": "api-2"}
    assert parsed("--clear") == {"action": "clear", "target": None}
    assert parsed("api", "--move") == {"action": "move", "target": "api"}
    assert parsed("--reload") == {"action": "reload", "target": None}
    assert parsed("--rollout") == {"action": "rollout", "target": None}


@pytest.mark.parametrize(
    "argv, message",
    [
        ((), "name a service"),
        (("api",), "KEY=VALUE"),
        (("latency_ms=1",), "name a service or replica before"),
        (("api", "latency_ms"), "is not KEY=VALUE"),
        (("api", "Latency=1"), "is not KEY=VALUE"),
        (("api", "latency_ms=nan"), "not a number"),
        (("api", "latency_ms=1e999"), "not a number"),
        (("api", "x=1", "--stop"), "no settings"),
        (("api", "--clear"), "--clear takes no"),
        (("nginx", "--reload"), "--reload takes no service"),
        (("--move",), "name a service"),
    ],
)
def test_malformed_commands_are_refused_in_one_line(argv, message):
    with pytest.raises(LabError, match=message):
        parsed(*argv)


def test_targets_resolve_against_the_variant():
    variant = Variant(
        "v", "", NginxSpec(), (ServiceSpec("api", replicas=3), ServiceSpec("gateway")),
        LoadSpec("trivial.py", 1, 1, 1), parts=("redis",),
    )  # fmt: skip
    assert resolve_target("api", variant) == Target("api", None)
    assert resolve_target("api-3", variant) == Target("api", 2)
    assert resolve_target("gateway-1", variant) == Target("gateway", 0)
    assert resolve_target("redis", variant) == Target("redis", None, part=True)
    with pytest.raises(LabError, match=r"no replica api-4 \(this topology has api-1, api-2"):
        resolve_target("api-4", variant)
    with pytest.raises(LabError, match="unknown service 'web' .*api, gateway, redis"):
        resolve_target("web", variant)
    assert parse_setting("max_concurrent=4") == ("max_concurrent", 4)
