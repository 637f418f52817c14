"""A variant's timed faults, applied during the load: settings through a service's
/admin/faults, or stop / kill / start / remove through the topology."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import aiohttp

from labs.engine.errors import LabError
from labs.engine.model.spec import FaultStep
from labs.engine.topology.base import Endpoints, Topology


async def apply_faults(
    steps: Sequence[FaultStep],
    endpoints: Endpoints,
    events: list[dict[str, object]],
    topology: Topology | None = None,
) -> None:
    """Apply each step at its time (seconds after Locust starts): set faults through the
    service's /admin/faults, or stop/kill/start its processes, or remove replicas from
    nginx's upstream, through the topology."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for step in sorted(steps, key=lambda s: s.at_s):
            await asyncio.sleep(max(0.0, step.at_s - (time.monotonic() - started)))
            applied_at = time.time()  # when the fault began (a stop takes a while to finish)
            event: dict[str, object] = {"what": "fault", "action": step.action}
            if step.label:
                event["label"] = step.label
            if step.action == "settings":
                await _put_faults(session, step, endpoints)
                event["settings"] = dict(step.settings)
            elif topology is None:
                raise LabError(f"fault action {step.action!r} needs the topology")
            elif step.action == "start":
                event["processes"] = await topology.resume(step.service, step.replica)
            elif step.action == "remove":
                event["processes"] = await topology.remove(step.service, step.replica)
            elif step.action == "move":
                event["processes"] = await topology.move(step.service, step.replica)
            elif step.action == "reload":
                event["processes"] = await topology.reload()
            else:
                event["processes"] = await topology.halt(step.service, step.replica, step.action)
            # how long the action took: a "start" returns once the replicas are ready
            event["took_s"] = round(time.time() - applied_at, 3)
            events.append(
                {
                    "epoch_s": applied_at,
                    **event,
                    "service": step.service,
                    "replica": step.replica,
                }
            )


async def _put_faults(
    session: aiohttp.ClientSession, step: FaultStep, endpoints: Endpoints
) -> None:
    urls = endpoints.services.get(step.service, [])
    if step.replica is not None:
        urls = urls[step.replica : step.replica + 1]
    for url in urls:
        async with session.put(f"{url}/admin/faults", json=dict(step.settings)) as reply:
            if reply.status != 200:
                detail = problem_detail(await reply.text())
                raise LabError(f"fault {dict(step.settings)} rejected by {url}: {detail}")


def problem_detail(text: str) -> str:
    """A service's refusal in one line: its problem+json `detail` (else `title`), or
    the body's first line."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("detail") or body.get("title")):
        return str(body.get("detail") or body.get("title"))
    return (text.strip().splitlines() or ["no body"])[0][:200]
