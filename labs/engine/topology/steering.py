"""What a variant's controller (`Variant.controller`) can do while the load runs.

A controller is an async function the runner starts beside Locust and cancels when
the load ends. It acts through a `Steering`: nginx weights changed by a reload, replicas
stopped and started, the replicas' /admin/stats read; every action and every decision
it logs becomes an event of the variant (results.json, the report, the plots' shading).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from labs.engine.topology.base import Endpoints, Topology


class Steering:
    def __init__(
        self, topology: Topology, endpoints: Endpoints, events: list[dict[str, object]]
    ) -> None:
        self.topology = topology
        self.endpoints = endpoints
        self.events = events
        self.started = time.monotonic()

    def now_s(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.started

    async def until(self, at_s: float) -> None:
        """Sleep until `at_s` seconds into the load."""
        await asyncio.sleep(max(0.0, at_s - self.now_s()))

    def log(self, decision: str, **details: object) -> None:
        """Record a decision (an event with "what": "decision")."""
        self.events.append({"epoch_s": time.time(), "what": "decision", "decision": decision,
                            **details})  # fmt: skip

    async def weights(self, weights: tuple[int, ...], label: str) -> None:
        """New upstream weights through one nginx reload, recorded as a fault event."""
        await self._act("weights", label, self.topology.reweight(weights), weights=list(weights))

    async def stop(self, service: str, replica: int, label: str) -> None:
        await self._act("stop", label, self.topology.halt(service, replica, "stop"),
                        service=service, replica=replica)  # fmt: skip

    async def start(self, service: str, replica: int, label: str) -> None:
        """Start a stopped replica again; returns once it is ready."""
        await self._act("start", label, self.topology.resume(service, replica),
                        service=service, replica=replica)  # fmt: skip

    async def remove(self, service: str, replica: int, label: str) -> None:
        """Take a replica out of nginx's upstream (one reload), e.g. one that was stopped:
        in the compose topology a stopped container's name no longer resolves, and nginx
        refuses a config that names it."""
        await self._act("remove", label, self.topology.remove(service, replica),
                        service=service, replica=replica)  # fmt: skip

    async def stats(self, service: str, replica: int) -> Mapping[str, object]:
        """One replica's /admin/stats ({} when it does not answer)."""
        url = self.endpoints.services[service][replica]
        timeout = aiohttp.ClientTimeout(total=1.0)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{url}/admin/stats") as reply,
            ):
                body = await reply.json()
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    async def _act(self, action: str, label: str, act: Awaitable[object], **what: object) -> None:
        began = time.time()
        await act
        self.events.append({"epoch_s": began, "what": "fault", "action": action, "label": label,
                            "took_s": round(time.time() - began, 3), **what})  # fmt: skip


async def run_controller(
    controller: Callable[[Steering], Awaitable[None]], steering: Steering
) -> None:
    """Run a controller; a crash is recorded as an event rather than lost with the task."""
    try:
        await controller(steering)
    except Exception as exc:  # noqa: BLE001 - any failure of the lab's code is reported
        steering.log("controller failed", error=f"{type(exc).__name__}: {exc}")
