"""What the live dashboard shows, sampled once a second from the running topology.

Each tick reads what arrived since the last one and nothing else:
- nginx's access log (tailed): requests by status class, p50/p99 of $request_time;
- nginx's error log (tailed): upstream errors by kind (labs.engine.topology.nginx.ERROR_KINDS);
- every replica's /admin/stats: arrivals per second and in-flight (api), attempts,
  retries, breaker state and bulkhead occupancy per downstream (gateway);
- every fault switch's /admin/faults: which replicas are slow or failing;
- the faults `lab fault` applied (the control endpoint's events), as markers.
From those, each node of the topology diagram gets a state: up, slow, failing, down,
or open (a gateway with an open breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from labs.engine.analysis.stats import mapping, whole
from labs.engine.live.logtail import ContainerLogTail, LogTail
from labs.engine.model.spec import Variant
from labs.engine.topology import nginx
from labs.engine.topology.base import Endpoints

HISTORY = 600
"""Points kept (and sent to a page that connects): ten minutes at one a second."""
TICK_S = 1.0
SLOW_MS = 100.0
"""A replica whose fault switch adds this much latency or more is drawn as slow."""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def access_numbers(lines: Iterable[str]) -> tuple[dict[str, int], list[float]]:
    """Requests by status class and each request's time in ms, from access-log lines."""
    classes: Counter[str] = Counter()
    times = []
    for line in lines:
        try:
            entry = json.loads(line)
            status, took = int(entry["status"]), float(entry["request_time"])
        except (ValueError, KeyError, TypeError):
            continue
        classes[f"{status // 100}xx"] += 1
        times.append(took * 1000)
    return dict(classes), times


@dataclass(frozen=True)
class Replica:
    name: str
    """api-1, gateway-1, ..."""
    service: str
    index: int
    module: str


def topology_graph(variant: Variant, endpoints: Endpoints) -> dict[str, object]:
    """The diagram: client -> nginx -> the backend's replicas; each service's replicas
    -> the replicas (or part) its `depends_on` names; parts such as redis."""
    nodes: list[dict[str, str]] = [
        {"id": "client", "kind": "client", "label": "client (curl, Locust)"},
        {"id": "nginx", "kind": "nginx", "label": f"nginx {urlsplit(endpoints.nginx_url).netloc}"},
    ]
    edges: list[list[str]] = [["client", "nginx"]]
    names: dict[str, list[str]] = {}
    for spec in variant.services:
        names[spec.name] = [spec.replica_name(i) for i in range(spec.replicas)]
        for name in names[spec.name]:
            nodes.append({"id": name, "kind": "service", "service": spec.name, "label": name})
    for part in variant.parts:
        names[part] = [part]
        nodes.append({"id": part, "kind": "part", "service": part, "label": part})
    for name in names.get(variant.nginx.backend, []):
        edges.append(["nginx", name])
    for spec in variant.services:
        for dependency in spec.depends_on.values():
            for source in names[spec.name]:
                edges.extend([source, target] for target in names.get(dependency, []))
    return {"nodes": nodes, "edges": edges, "backend": variant.nginx.backend}


@dataclass
class Collector:
    variant: Variant
    endpoints: Endpoints
    access: LogTail | ContainerLogTail | None
    """nginx's access log; None where it cannot be read live."""
    errors: LogTail | ContainerLogTail | None
    events: list[dict[str, object]]
    """The control endpoint's list: every fault applied since `lab up`."""
    title: str = ""
    alive: Callable[[str], bool | None] = lambda _name: None
    """Whether a process of the topology is running (None: this topology cannot say)."""
    client: Callable[[], tuple[int, int] | None] | None = None
    """The load generator's running totals (requests, failures), when the engine drives
    it (`lab run --live`); None under `lab up`, where the client is yours."""
    points: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    listeners: set[asyncio.Queue[dict[str, object]]] = field(default_factory=set)
    previous: dict[str, dict[str, float]] = field(default_factory=dict)
    """Replica -> counter -> its last value (rates are differences)."""

    def __post_init__(self) -> None:
        self.modules = {s.name: s.module for s in self.variant.services}
        self.last_tick = time.time()

    @property
    def graph(self) -> dict[str, object]:
        return topology_graph(self.variant, self.endpoints)

    def replicas(self) -> list[tuple[Replica, str]]:
        return [
            (Replica(f"{service}-{i + 1}", service, i, self.modules.get(service, "")), url)
            for service, urls in self.endpoints.services.items()
            for i, url in enumerate(urls)
        ]

    def live_logs(self) -> bool:
        return self.access is not None

    def init_message(self) -> dict[str, object]:
        return {
            "title": self.title,
            "graph": self.graph,
            "points": list(self.points),
            "events": self.marker_events(),
            "nginx_logs": self.live_logs(),
        }

    def marker_events(self) -> list[dict[str, object]]:
        """The control events as markers: time and a short label."""
        markers = []
        for event in self.events:
            target = event.get("service") or "all"
            if event.get("replica") is not None:
                target = f"{target}-{whole(event['replica']) + 1}"
            action = str(event.get("action"))
            if action == "settings":
                settings = mapping(event.get("settings"))
                label = f"{target} " + " ".join(f"{k}={v}" for k, v in settings.items())
            else:
                label = f"{action} {target}"
            markers.append({"t": event.get("epoch_s"), "label": label, "action": action})
        return markers

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=0.8)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.time()
                try:
                    point = await self.sample(session)
                except Exception as exc:  # noqa: BLE001 - one bad tick must not end the stream
                    print(f"live: sample failed: {exc!r}", file=sys.stderr, flush=True)
                    await asyncio.sleep(TICK_S)
                    continue
                self.points.append(point)
                message = {"point": point, "events": self.marker_events()}
                for queue in list(self.listeners):
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(message)
                await asyncio.sleep(max(0.05, TICK_S - (time.time() - started)))

    async def sample(self, session: aiohttp.ClientSession) -> dict[str, object]:
        now = time.time()
        elapsed = max(0.001, now - self.last_tick)
        self.last_tick = now
        access, errors = await asyncio.gather(_lines(self.access), _lines(self.errors))
        classes, times = access_numbers(access)
        kinds = nginx.parse_error_log("\n".join(errors))
        replicas = self.replicas()
        stats, faults = await asyncio.gather(
            asyncio.gather(*(_get(session, f"{url}/admin/stats") for _, url in replicas)),
            asyncio.gather(*(self._faults(session, r, url) for r, url in replicas)),
        )
        nodes: dict[str, str] = {"client": "up", "nginx": await self._nginx_state()}
        per_replica: dict[str, dict[str, object]] = {}
        gateways: dict[str, dict[str, object]] = {}
        for (replica, _), answer, fault in zip(replicas, stats, faults, strict=True):
            nodes[replica.name] = self._state(replica, answer, fault)
            if answer is None:
                per_replica[replica.name] = {"arrivals": None, "in_flight": None}
                continue
            counters = {"arrivals": _number(answer, "arrivals", "total")}
            if replica.module == "services.gateway" or "downstreams" in answer:
                counters["arrivals"] = sum(
                    float(n) for n in dict(answer.get("responses") or {}).values()
                )
                gateways[replica.name] = self._gateway(replica.name, answer, elapsed)
                if any(d.get("breaker") == "open" for d in gateways[replica.name].values()):
                    nodes[replica.name] = "open"
            rates = self._rates(replica.name, counters, elapsed)
            per_replica[replica.name] = {
                "arrivals": rates.get("arrivals"),
                "in_flight": answer.get("in_flight"),
            }
        for part, url in self.endpoints.parts.items():
            nodes[part] = "up" if await _listening(url) else "down"
        return {
            "t": round(now, 3),
            "client": self._client_rates(elapsed),
            "nginx": {k: round(v / elapsed, 2) for k, v in sorted(classes.items())},
            "requests": sum(classes.values()),
            "p50_ms": _round(percentile(times, 0.50)),
            "p99_ms": _round(percentile(times, 0.99)),
            "errors": kinds,
            "replicas": per_replica,
            "gateways": gateways,
            "nodes": nodes,
        }

    def _rates(self, name: str, counters: dict[str, float | None], elapsed: float) -> dict:
        before = self.previous.setdefault(name, {})
        rates: dict[str, float | None] = {}
        for key, value in counters.items():
            if value is None:
                rates[key] = None
                continue
            last = before.get(key)
            # first sight, or a restarted process (its counters began again at 0)
            rates[key] = 0.0 if last is None or value < last else round((value - last) / elapsed, 2)
            before[key] = value
        return rates

    def _client_rates(self, elapsed: float) -> dict[str, float | None]:
        """Requests/s the client saw answered ok and failed ({}: no client to ask)."""
        totals = self.client() if self.client else None
        if totals is None:
            return {}
        requests, failures = totals
        return self._rates("client", {"ok": requests - failures, "failed": failures}, elapsed)

    def _gateway(self, name: str, answer: dict, elapsed: float) -> dict[str, dict[str, object]]:
        """Per downstream: attempts and retries per second, breaker state, bulkhead use."""
        found: dict[str, dict[str, object]] = {}
        for downstream, data in dict(answer.get("downstreams") or {}).items():
            rates = self._rates(
                f"{name}/{downstream}",
                {"attempts": data.get("attempts"), "retries": data.get("retries")},
                elapsed,
            )
            breaker = data.get("breaker") or {}
            bulkhead = data.get("bulkhead") or {}
            found[downstream] = {
                **rates,
                "in_flight": data.get("in_flight"),
                "breaker": breaker.get("state"),
                "bulkhead": bulkhead.get("in_flight"),
                "bulkhead_max": bulkhead.get("max_in_flight"),
            }
        return found

    async def _faults(
        self, session: aiohttp.ClientSession, replica: Replica, url: str
    ) -> dict | None:
        if replica.module != "services.api":
            return None
        return await _get(session, f"{url}/admin/faults")

    def _state(self, replica: Replica, stats: dict | None, faults: dict | None) -> str:
        if stats is None or self.alive(replica.name) is False:
            return "down"
        if faults:
            if float(faults.get("outage_remaining_s") or 0) > 0:
                return "failing"
            if faults.get("error_status") and float(faults.get("error_rate") or 0) > 0:
                return "failing"
            if float(faults.get("latency_ms") or 0) >= SLOW_MS:
                return "slow"
        return "up"

    async def _nginx_state(self) -> str:
        if self.alive("nginx") is False:
            return "down"
        return "up" if await _listening(self.endpoints.nginx_url) else "down"


async def _lines(tail: LogTail | ContainerLogTail | None) -> list[str]:
    return await asyncio.to_thread(tail.read) if tail is not None else []


async def _get(session: aiohttp.ClientSession, url: str) -> dict | None:
    try:
        async with session.get(url) as reply:
            return await reply.json() if reply.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None


async def _listening(url: str) -> bool:
    """A TCP connect, nothing sent: the check adds no line to any log."""
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port), timeout=0.5
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _number(data: dict, *path: str) -> float | None:
    value: object = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
