"""Free 127.0.0.1 ports, and a clear error when a requested one is taken."""

from __future__ import annotations

import contextlib
import socket

from labs.engine.errors import LabError

HOST = "127.0.0.1"
_handed_out: set[int] = set()
"""Ports this process has already chosen. A chosen port is free again until its
service binds it, so the kernel may offer it to the next caller: two variants that
start at once (`parallel_variants`) would then share a port."""


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free ports (all held open until all are
    chosen), never one this process has handed out before."""
    held: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)  # held open: the kernel offers another port next time
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in _handed_out:
                chosen.append(port)
        _handed_out.update(chosen)
        return chosen
    finally:
        for sock in held:
            sock.close()


def ensure_port_free(port: int) -> None:
    if not 1 <= port <= 65535:
        raise LabError(f"port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise LabError(f"port {port} on {HOST} is already in use ({exc.strerror})") from None


def is_listening(port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout):
        return True
    return False
