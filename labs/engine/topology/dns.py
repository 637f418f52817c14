"""The "dns" part of a local topology: dnsmasq answering for the lab's names.

dnsmasq listens on DNS_ADDRESS:53 and answers `<service>.lab` from a hosts file that
the topology rewrites (then SIGHUP: dnsmasq re-reads it) when a backend moves to
another loopback address. nginx resolves names in an `upstream` once, through the
system resolver; to send that lookup here without touching /etc, nginx runs in a mount
namespace whose /etc/resolv.conf names DNS_ADDRESS (`namespaced`). Needs root: port 53
and the mount.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import time
from pathlib import Path

from labs.engine.errors import LabError, StartupError
from labs.engine.runtime.processes import Child

DNS_ADDRESS = "127.0.0.9"
DNS_PORT = 53
DOMAIN = "lab"
TTL_S = 1
"""dnsmasq's --local-ttl: how long a client may cache an answer."""
BACKEND_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(2, 9))
"""Loopback addresses a backend binds, one after another as it moves."""
INSTALL_HINT = "install it: apt-get install dnsmasq (Debian/Ubuntu)"
STARTUP_TIMEOUT_S = 10.0


def name_of(service: str) -> str:
    """The DNS name nginx knows a service by: api -> api.lab."""
    return f"{service}.{DOMAIN}"


def find_dnsmasq() -> str:
    candidate = shutil.which("dnsmasq")
    if not candidate and os.access("/usr/sbin/dnsmasq", os.X_OK):
        candidate = "/usr/sbin/dnsmasq"
    if not candidate:
        raise LabError(f"dnsmasq not found; {INSTALL_HINT}")
    return candidate


def preflight() -> None:
    """One line before anything starts: no dnsmasq, not root, or port 53 taken."""
    find_dnsmasq()
    if os.geteuid() != 0:
        raise LabError(
            "the dns part needs root (dnsmasq on port 53 of 127.0.0.9, and a mount "
            "namespace for nginx's resolv.conf): run it with sudo"
        )
    for tool in ("unshare", "mount"):
        if not shutil.which(tool):
            raise LabError(f"{tool} not found (util-linux): the dns part needs it")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((DNS_ADDRESS, DNS_PORT))
        except OSError as exc:
            raise LabError(
                f"{DNS_ADDRESS}:{DNS_PORT} is already in use ({exc.strerror}); stop the "
                "system's dnsmasq (service dnsmasq stop) or whatever listens there"
            ) from None


def dnsmasq_argv(hosts: Path, address: str = DNS_ADDRESS, port: int = DNS_PORT) -> list[str]:
    """dnsmasq in the foreground answering only from `hosts` (re-read on SIGHUP), only
    for *.lab (nothing is forwarded), with a 1 s TTL."""
    return [
        find_dnsmasq(),
        "--no-daemon", "--no-resolv", "--no-hosts",
        f"--addn-hosts={hosts}",
        f"--listen-address={address}", "--bind-interfaces", f"--port={port}",
        f"--local-ttl={TTL_S}", f"--local=/{DOMAIN}/",
        "--log-facility=-",
    ]  # fmt: skip


def write_hosts(path: Path, entries: dict[str, str]) -> None:
    """name -> address, as dnsmasq's --addn-hosts reads it (atomically replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".new")
    staged.write_text("".join(f"{address} {name}\n" for name, address in entries.items()))
    staged.replace(path)


def write_resolv_conf(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"nameserver {DNS_ADDRESS}\noptions attempts:1 timeout:1\n")


def namespaced(argv: list[str], resolv_conf: Path) -> list[str]:
    """`argv` in its own mount namespace whose /etc/resolv.conf is `resolv_conf`: the
    system resolver (getaddrinfo) of that process asks dnsmasq; nothing else changes."""
    script = f'mount --bind "{resolv_conf}" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def _query(name: str, ident: int) -> bytes:
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + labels + struct.pack(">HH", 1, 1)


def lookup(
    name: str, timeout_s: float = 0.5, server: tuple[str, int] = (DNS_ADDRESS, DNS_PORT)
) -> str | None:
    """One A query to the lab's dnsmasq (or `server`): the first address, "" for an
    answer with none (NXDOMAIN), None when nothing answered."""
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(_query(name, ident), server)
            reply = sock.recv(512)
        except OSError:
            return None
    if len(reply) < 12 or struct.unpack(">H", reply[:2])[0] != ident:
        return None
    answers = struct.unpack(">H", reply[6:8])[0]
    offset = len(_query(name, ident))
    for _ in range(answers):
        if reply[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        kind, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            return socket.inet_ntoa(reply[offset : offset + 4])
        offset += length
    return ""


async def wait_answer(child: Child, name: str, expected: str | None = None) -> None:
    """Until dnsmasq answers `name` (with `expected`, when given); fail fast if it exits."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        answer = await asyncio.to_thread(lookup, name)
        if answer is not None and (expected is None or answer == expected):
            return
        if not child.alive():
            raise StartupError(f"dnsmasq exited: {child.log_tail() or 'no output'}")
        if time.monotonic() > deadline:
            want = f" with {expected}" if expected else ""
            raise StartupError(
                f"dnsmasq not answering {name}{want} on {DNS_ADDRESS} after "
                f"{STARTUP_TIMEOUT_S:g} s (last answer: {answer!r})"
            )
        await asyncio.sleep(0.05)
