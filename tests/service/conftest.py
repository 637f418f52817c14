"""Fixtures for service tests: a real redis-server (no mocks of the store under test).

Each test module gets its own redis-server on a free 127.0.0.1 port (no persistence)
and stops it; a test that stops Redis takes a private one.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.engine.topology import parts
from labs.engine.topology.ports import free_ports


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            parts.redis_argv(self.port, workdir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not asyncio.run(parts.redis_ping(self.port)):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()
