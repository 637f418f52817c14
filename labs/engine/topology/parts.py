"""Infrastructure parts of a local topology that are not lab services (e.g. Redis).

A part is a system program the engine starts before the services, on a free
127.0.0.1 port, in the run's ProcessGroup (so it dies with the runner and carries
LAB_RUN_ID like everything else), and waits for until it answers. Services get
its URL through `ServiceSpec.depends_on`, exactly as they get another service's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError, StartupError
from labs.engine.runtime.processes import Child, ProcessGroup
from labs.engine.topology import dns
from labs.engine.topology.ports import HOST

REDIS_INSTALL_HINT = (
    "install it: apt-get install redis-server (Debian/Ubuntu) or brew install redis (macOS)"
)
STARTUP_TIMEOUT_S = 15.0
KNOWN_PARTS = ("redis", "dns")


def find_redis_server() -> str:
    """The redis-server binary: $LAB_REDIS_SERVER, then PATH, then /usr/bin and /usr/sbin."""
    override = os.environ.get("LAB_REDIS_SERVER")
    if override:
        if not os.access(override, os.X_OK):
            raise LabError(
                f"LAB_REDIS_SERVER={override} is not an executable redis-server; "
                f"{REDIS_INSTALL_HINT}"
            )
        return override
    candidate = shutil.which("redis-server")
    for fallback in ("/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if not candidate and os.access(fallback, os.X_OK):
            candidate = fallback
    if not candidate:
        raise LabError(f"redis-server not found; {REDIS_INSTALL_HINT}")
    return candidate


def redis_argv(port: int, workdir: Path) -> list[str]:
    """A throwaway Redis: loopback only, no persistence, logging to stdout (the child's log),
    findable by its LAB_RUN_ID."""
    return [
        find_redis_server(),
        "--port", str(port),
        "--bind", HOST,
        "--protected-mode", "yes",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(workdir),
        "--logfile", "",
        # Redis's process title overwrites its environment in memory, and with it the
        # LAB_RUN_ID that `lab down` and the next run look for in /proc/PID/environ.
        "--set-proc-title", "no",
    ]  # fmt: skip


def check_parts(parts: tuple[str, ...]) -> None:
    """Fail before anything starts: unknown part names, or a missing binary."""
    for part in parts:
        if part not in KNOWN_PARTS:
            raise LabError(f"unknown part {part!r} (known: {', '.join(KNOWN_PARTS)})")
        if part == "redis":
            find_redis_server()
        if part == "dns":
            dns.preflight()


@dataclass
class StartedPart:
    name: str
    child: Child
    url: str


async def start_part(
    name: str, group: ProcessGroup, port: int, workdir: Path, log_dir: Path | None = None
) -> StartedPart:
    """Start one part and return once it answers ("redis", or "dns": dnsmasq with an
    empty hosts file, `workdir`/hosts, that the topology fills)."""
    if name not in KNOWN_PARTS:
        raise LabError(f"unknown part {name!r} (known: {', '.join(KNOWN_PARTS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "dns":
        hosts = workdir / "hosts"
        dns.write_hosts(hosts, {})
        child = group.start("dns", dns.dnsmasq_argv(hosts), cwd=workdir, log_dir=log_dir)
        await dns.wait_answer(child, dns.name_of("probe"))
        return StartedPart(name, child, f"dns://{dns.DNS_ADDRESS}:{dns.DNS_PORT}")
    child = group.start("redis", redis_argv(port, workdir), cwd=workdir, log_dir=log_dir)
    await wait_redis(child, port)
    return StartedPart(name, child, f"redis://{HOST}:{port}")


async def redis_ping(port: int, timeout_s: float = 1.0) -> bool:
    """One PING over a raw socket (RESP inline command): True on +PONG."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        return line.startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def wait_redis(child: Child, port: int) -> None:
    """Poll PING until +PONG; fail fast with the log's tail if redis-server exits."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not await redis_ping(port):
        if not child.alive():
            raise StartupError(f"redis exited during startup: {child.log_tail() or 'no output'}")
        if time.monotonic() > deadline:
            raise StartupError(
                f"redis not answering PING on port {port} after {STARTUP_TIMEOUT_S:g} s"
            )
        await asyncio.sleep(0.05)
