"""free_ports never hands out a port twice in one process: variants that start at
once (`parallel_variants`) each get their own ports."""

from __future__ import annotations

from labs.engine.topology.ports import free_ports


def test_successive_calls_never_repeat_a_port():
    ports = [port for _ in range(300) for port in free_ports(1)]
    ports += free_ports(20)
    assert len(ports) == len(set(ports)) == 320
