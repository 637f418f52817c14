"""The control endpoint of `lab up`: how `lab fault` reaches the topology it keeps.

The supervisor (labs.engine.runtime.supervisor) owns the topology: nginx and the services are
its children (or its Compose project), and only it can stop, kill and start them
again. So it serves a small aiohttp app on 127.0.0.1, on a port of its own (never
behind nginx), and writes the URL and a random token into the state file (`up.json`).
`lab fault` reads both and POSTs one request per command; the supervisor turns it into
a `FaultStep` and applies it with the runner's `apply_faults`, exactly as a lab's
timed faults are applied, and records the event (the dashboard shows it).

    POST /control/fault   {"target": "api-2", "action": "settings", "settings": {...}}
                          {"target": "api", "action": "move"}   (a backend nginx finds by name)
                          {"target": null, "action": "clear"}   (or "reload": nginx's config;
                                           "rollout": the variant's rollout controller)
                          header X-Lab-Token: the token from up.json
    -> 200 {"event": {...}}  or  400 {"error": "one line"}
    GET  /control/events  every fault applied since `lab up`

A mutating request needs the token: a web page open in the learner's browser cannot
send it (a custom header makes the browser ask first, and nothing here answers CORS).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from labs.engine.errors import LabError
from labs.engine.model.spec import FaultStep, Variant
from labs.engine.topology.base import Endpoints, Topology
from labs.engine.topology.faults import apply_faults
from labs.engine.topology.steering import Steering, run_controller

TOKEN_HEADER = "X-Lab-Token"
ACTIONS = ("settings", "clear", "stop", "kill", "start", "move", "reload", "rollout")
NO_TARGET = ("clear", "reload", "rollout")
ADMIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Target:
    """What a command names: a service (every replica) or one replica, or a part."""

    service: str
    replica: int | None
    """0-based index, or None for every replica."""
    part: bool = False

    @property
    def label(self) -> str:
        return self.service if self.replica is None else f"{self.service}-{self.replica + 1}"


def resolve_target(text: str, variant: Variant) -> Target:
    """`api` -> every api replica, `api-2` -> the second, `redis` -> the part; a name
    the variant does not have is a one-line LabError that lists what it has."""
    replicas = {s.name: s.replicas for s in variant.services}
    if text in replicas:
        return Target(text, None)
    if text in variant.parts:
        return Target(text, None, part=True)
    service, _, index = text.rpartition("-")
    if service in replicas and index.isdigit():
        number = int(index)
        if not 1 <= number <= replicas[service]:
            have = ", ".join(f"{service}-{i + 1}" for i in range(replicas[service]))
            raise LabError(f"no replica {text} (this topology has {have})")
        return Target(service, number - 1)
    known = [*replicas, *variant.parts]
    raise LabError(f"unknown service {text!r} (this topology has: {', '.join(known)})")


@dataclass
class Control:
    """The supervisor's side: resolves and applies faults, keeps the events."""

    variant: Variant
    endpoints: Endpoints
    topology: Topology
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    events: list[dict[str, object]] = field(default_factory=list)
    baselines: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    """Service with a fault switch -> each replica's /admin/faults as `lab up` left it:
    what `lab fault --clear` puts back."""
    on_change: Callable[[], None] | None = None
    """Called after a start (Compose may publish a replica on a new port)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rollout: asyncio.Task[None] | None = None
    """The variant's rollout controller (deploys), once `lab fault --rollout` started it."""

    async def read_baselines(self) -> None:
        """Which services have a fault switch, and their settings at start-up."""
        timeout = aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for service, urls in self.endpoints.services.items():
                found = []
                for url in urls:
                    try:
                        async with session.get(f"{url}/admin/faults") as reply:
                            if reply.status != 200:
                                break
                            found.append(await reply.json())
                    except (TimeoutError, aiohttp.ClientError, ValueError):
                        break
                if found and len(found) == len(urls):
                    for settings in found:
                        settings.pop("outage_remaining_s", None)
                        settings["outage_s"] = 0
                    self.baselines[service] = found

    async def apply(self, request: Mapping[str, object]) -> dict[str, object]:
        """One command; returns its event. Bad input: LabError with one line."""
        action = request.get("action")
        if action not in ACTIONS:
            raise LabError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        async with self.lock:  # one command at a time: a kill waits for a start to finish
            if action == "clear":
                return await self._clear()
            if action == "reload":
                return await self._run(FaultStep(0.0, "nginx", action="reload"))
            if action == "rollout":
                return self._rollout()
            target = resolve_target(str(request.get("target") or ""), self.variant)
            if action == "settings":
                return await self._settings(target, request.get("settings"))
            if target.part and action in ("start", "move"):
                raise LabError(f"cannot {action} {target.label}: only services can be")
            step = FaultStep(0.0, target.service, replica=target.replica, action=action)
            event = await self._run(step)
            if action in ("start", "move") and self.on_change is not None:
                self.on_change()  # new processes (and, after a move, a new address)
            return event

    async def _settings(self, target: Target, settings: object) -> dict[str, object]:
        if target.part or target.service not in self.baselines:
            have = ", ".join(self.baselines) or "none"
            raise LabError(
                f"{target.service} has no fault switch (/admin/faults); services with one: {have}"
            )
        if not isinstance(settings, dict) or not settings:
            raise LabError("give at least one setting: KEY=VALUE (e.g. latency_ms=200)")
        count = len(self.endpoints.services.get(target.service, []))
        replicas = range(count) if target.replica is None else [target.replica]
        started = time.time()
        applied, skipped = [], []
        for replica in replicas:  # a refused value fails on the first: nothing is set
            step = FaultStep(0.0, target.service, settings=dict(settings), replica=replica)
            try:
                await apply_faults([step], self.endpoints, [], self.topology)
            except (TimeoutError, aiohttp.ClientError):
                skipped.append(f"{target.service}-{replica + 1}")
            else:
                applied.append(f"{target.service}-{replica + 1}")
        if not applied:
            raise LabError(
                f"{target.label} did not answer; is it stopped? "
                f"`lab fault {target.label} --start` brings it back"
            )
        event: dict[str, object] = {
            "epoch_s": started, "what": "fault", "action": "settings",
            "settings": dict(settings), "processes": applied, "skipped": skipped,
            "took_s": round(time.time() - started, 3),
            "service": target.service, "replica": target.replica,
        }  # fmt: skip
        self.events.append(event)
        return event

    async def _clear(self) -> dict[str, object]:
        """Every replica with a fault switch back to its settings at start-up; a replica
        that does not answer (stopped, killed) is skipped and named."""
        cleared, skipped = [], []
        for service, baselines in self.baselines.items():
            for replica, baseline in enumerate(baselines):
                step = FaultStep(0.0, service, settings=baseline, replica=replica)
                try:
                    await apply_faults([step], self.endpoints, [], self.topology)
                except (LabError, TimeoutError, aiohttp.ClientError):
                    skipped.append(f"{service}-{replica + 1}")
                else:
                    cleared.append(f"{service}-{replica + 1}")
        event: dict[str, object] = {
            "epoch_s": time.time(), "what": "fault", "action": "clear",
            "processes": cleared, "skipped": skipped, "service": None, "replica": None,
        }  # fmt: skip
        self.events.append(event)
        return event

    def _rollout(self) -> dict[str, object]:
        """Start the variant's controller as a run starts it beside the load; its moves
        and gate readings join the events (the dashboard shows them)."""
        controller = self.variant.controller
        if controller is None:
            raise LabError(f"{self.variant.name} has no rollout (the deploys lab's variants do)")
        if self.rollout is not None and not self.rollout.done():
            raise LabError("a rollout is already running (`lab down` ends it)")
        steering = Steering(self.topology, self.endpoints, self.events)
        self.rollout = asyncio.create_task(run_controller(controller, steering))
        event: dict[str, object] = {
            "epoch_s": time.time(), "what": "fault", "action": "rollout",
            "processes": [], "service": None, "replica": None,
        }  # fmt: skip
        self.events.append(event)
        return event

    async def _run(self, step: FaultStep) -> dict[str, object]:
        found: list[dict[str, object]] = []
        try:
            await apply_faults([step], self.endpoints, found, self.topology)
        except (TimeoutError, aiohttp.ClientError) as exc:
            which = step.service if step.replica is None else f"{step.service}-{step.replica + 1}"
            raise LabError(
                f"{which} did not answer ({type(exc).__name__}); is it stopped? "
                f"`lab fault {which} --start` brings it back"
            ) from None
        self.events.extend(found)
        return found[-1]


def error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


CONTROL = web.AppKey("control", Control)


async def post_fault(request: web.Request) -> web.Response:
    control = request.app[CONTROL]
    if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), control.token):
        return error("missing or wrong token (read it from the state file, up.json)", 403)
    try:
        body = await request.json()
    except ValueError:
        return error("body must be a JSON object")
    if not isinstance(body, dict):
        return error("body must be a JSON object")
    try:
        event = await control.apply(body)
    except LabError as exc:
        return error(str(exc).replace("\n", " "))
    return web.json_response({"event": event})


async def get_events(request: web.Request) -> web.Response:
    return web.json_response({"events": request.app[CONTROL].events})


def create_app(control: Control) -> web.Application:
    app = web.Application()
    app[CONTROL] = control
    app.router.add_post("/control/fault", post_fault)
    app.router.add_get("/control/events", get_events)
    return app
