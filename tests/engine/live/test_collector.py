"""The live dashboard's collector, without a topology: log tails, per-second numbers,
the diagram, node states and fault markers."""

from __future__ import annotations

import json

from labs.engine.live.collector import (
    Collector,
    Replica,
    access_numbers,
    percentile,
    topology_graph,
)
from labs.engine.live.logtail import LogTail
from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.topology.base import Endpoints


def variant() -> Variant:
    gateway = ServiceSpec("gateway", module="services.gateway", depends_on={"api-url": "api"})
    return Variant(
        "v", "", NginxSpec(backend="gateway"), (ServiceSpec("api", replicas=2), gateway),
        LoadSpec("trivial.py", 1, 1, 1), parts=("redis",),
    )  # fmt: skip


def test_log_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("old line\n")
    tail = LogTail(path)
    assert tail.read() == []
    with path.open("a") as log:
        log.write("one\ntw")
    assert tail.read() == ["one"]
    with path.open("a") as log:
        log.write("o\n")
    assert tail.read() == ["two"]
    path.write_text("new\n")  # rewritten, shorter: read again from the start
    assert tail.read() == ["new"]
    assert LogTail(tmp_path / "missing.log").read() == []


def test_access_lines_become_status_classes_and_times():
    lines = [
        json.dumps({"status": 200, "request_time": 0.002}),
        json.dumps({"status": 502, "request_time": 0.000}),
        json.dumps({"status": 200, "request_time": 0.250}),
        "not json",
    ]
    classes, times = access_numbers(lines)
    assert classes == {"2xx": 2, "5xx": 1}
    assert times == [2.0, 0.0, 250.0]
    assert percentile(times, 0.5) == 2.0 and percentile(times, 0.99) == 250.0
    assert percentile([], 0.5) is None


def test_diagram_follows_nginx_backend_and_depends_on():
    graph = topology_graph(variant(), Endpoints("http://127.0.0.1:8080"))
    ids = [node["id"] for node in graph["nodes"]]
    assert ids == ["client", "nginx", "api-1", "api-2", "gateway-1", "redis"]
    assert graph["edges"] == [
        ["client", "nginx"], ["nginx", "gateway-1"], ["gateway-1", "api-1"], ["gateway-1", "api-2"],
    ]  # fmt: skip


def test_node_states_and_markers():
    events = [
        {"epoch_s": 1.0, "action": "settings", "service": "api", "replica": None,
         "settings": {"latency_ms": 200}},
        {"epoch_s": 2.0, "action": "kill", "service": "api", "replica": 1},
        {"epoch_s": 3.0, "action": "clear", "service": None, "replica": None},
    ]  # fmt: skip
    collector = Collector(variant(), Endpoints("http://127.0.0.1:1"), None, None, events)
    api = Replica("api-1", "api", 0, "services.api")
    assert collector._state(api, None, None) == "down"
    assert collector._state(api, {}, {"latency_ms": 150}) == "slow"
    assert collector._state(api, {}, {"latency_ms": 20}) == "up"
    assert collector._state(api, {}, {"error_status": 503, "error_rate": 0.5}) == "failing"
    assert collector._state(api, {}, {"outage_remaining_s": 1.5}) == "failing"
    collector.alive = lambda name: name != "api-1"
    assert collector._state(api, {}, {}) == "down", "a dead process is down whatever it said"
    labels = [m["label"] for m in collector.marker_events()]
    assert labels == ["api latency_ms=200", "kill api-2", "clear all"]
    assert collector._rates("x", {"n": 10}, 1.0) == {"n": 0.0}
    assert collector._rates("x", {"n": 25}, 0.5) == {"n": 30.0}
    assert collector._rates("x", {"n": 3}, 1.0) == {"n": 0.0}, "a restarted process"
