"""Real gateways in front of real apis on 127.0.0.1 port 0, for the service tests here.

`Topology`: one api behind a gateway (the `topology` fixture); `Stack`: payments and
catalog apis behind one gateway (the `stack` fixture, picked by a `Setup`). Faults go
through the apis' /admin/faults; nothing under test is mocked.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from services.gateway.config import Timeouts
from services.gateway.retry.policy import RetryPolicy

FAST = RetryPolicy(
    "exponential", max_attempts=3, base_s=0.01, cap_s=0.02, deadline_s=2, honour_retry_after=False
)
"""The one-api topology's default policy: quick retries."""
ONE_TRY = RetryPolicy("none", deadline_s=5)
"""The two-api stack's default policy: no retries."""
NO_LIMITS = {"timeouts": Timeouts(connect_s=None, read_s=None)}
"""Downstream settings without connect or read timeouts: only the deadline bounds a call."""


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, keepalive_timeout=75)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Topology:
    api: str
    gateway: str
    session: aiohttp.ClientSession

    async def faults(self, **settings: object) -> None:
        async with self.session.put(f"{self.api}/admin/faults", json=settings) as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict:
        async with self.session.get(f"{self.gateway}/admin/stats") as r:
            assert r.status == 200
            return await r.json()


@dataclass
class Setup:
    """What differs between the tests: each downstream's config, the gateway's pool."""

    payments: Mapping[str, object] = field(default_factory=dict)
    catalog: Mapping[str, object] = field(default_factory=dict)
    pool: str = "per-downstream"
    shared_max_connections: int = 100


@dataclass
class Stack:
    payments: str
    catalog: str
    gateway: str
    session: aiohttp.ClientSession

    async def faults(self, api: str, **settings: object) -> None:
        async with self.session.put(f"{api}/admin/faults", json=settings) as r:
            assert r.status == 200, await r.text()

    async def get(self, path: str) -> tuple[int, float, Mapping[str, str]]:
        started = time.monotonic()
        async with self.session.get(f"{self.gateway}{path}") as r:
            await r.read()
            return r.status, time.monotonic() - started, r.headers

    async def downstream(self, name: str) -> dict:
        async with self.session.get(f"{self.gateway}/admin/stats") as r:
            return (await r.json())["downstreams"][name]

    async def metrics(self) -> str:
        async with self.session.get(f"{self.gateway}/metrics") as r:
            return await r.text()


def metric_sample(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


async def while_payments_hangs(stack: Stack, calls: int) -> list[asyncio.Task]:
    """Start `calls` /checkout requests on a payments that takes 1.5 s each."""
    await stack.faults(stack.payments, latency_ms=1500)
    pending = [asyncio.create_task(stack.get("/checkout")) for _ in range(calls)]
    await asyncio.sleep(0.2)
    return pending
