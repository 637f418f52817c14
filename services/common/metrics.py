"""Prometheus metrics for a service: `install(app, service="api")` adds GET /metrics
and a middleware that counts every request by route and status and times it.

Each app gets its own registry (not prometheus_client's global one), so several
apps in one process (tests, a gateway with its api in-process) never collide.
The metric names are a contract with labs.engine.analysis.series: labs plot them by name.
nginx never proxies /metrics (compose/nginx template), like /admin/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

METRICS_PATH = "/metrics"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
"""breaker_state gauge values: plotted as a step line, higher is worse."""
CLIENT_CLOSED = 499
"""Recorded when the handler was cancelled because the client went away (nginx's code)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServiceMetrics:
    """Every metric a service may report; a service updates the ones it has."""

    service: str
    registry: CollectorRegistry
    requests: Counter
    """http_requests_total{service, method, route, status}"""
    latency: Histogram
    """http_request_duration_seconds{service, method, route}"""
    in_flight: Gauge
    """http_requests_in_flight{service}"""
    upstream_attempts: Counter
    """upstream_attempts_total{service, upstream, outcome}: every try, retries included."""
    retries: Counter
    """retries_total{service, upstream}: tries after the first."""
    breaker: Gauge
    """breaker_state{service, breaker}: 0 closed, 1 half-open, 2 open."""
    rejected: Counter
    """rejected_total{service, reason}: shed by a rate limiter, bulkhead or open breaker."""

    def set_breaker_state(self, breaker: str, state: str) -> None:
        """`state` as pybreaker names it ("closed", "half-open", "open")."""
        self.breaker.labels(self.service, breaker).set(BREAKER_STATES[state])


METRICS = web.AppKey("metrics", ServiceMetrics)


def create_metrics(service: str) -> ServiceMetrics:
    registry = CollectorRegistry()
    return ServiceMetrics(
        service=service,
        registry=registry,
        requests=Counter(
            "http_requests",
            "Requests answered, by route and status.",
            ("service", "method", "route", "status"),
            registry=registry,
        ),
        latency=Histogram(
            "http_request_duration_seconds",
            "Time from the request reaching the service to its response.",
            ("service", "method", "route"),
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        in_flight=Gauge(
            "http_requests_in_flight", "Requests being handled.", ("service",), registry=registry
        ),
        upstream_attempts=Counter(
            "upstream_attempts",
            "Calls to an upstream, every try, by outcome.",
            ("service", "upstream", "outcome"),
            registry=registry,
        ),
        retries=Counter(
            "retries", "Tries after the first.", ("service", "upstream"), registry=registry
        ),
        breaker=Gauge(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ("service", "breaker"),
            registry=registry,
        ),
        rejected=Counter(
            "rejected",
            "Requests shed before doing the work, by reason.",
            ("service", "reason"),
            registry=registry,
        ),
    )


def install(app: web.Application, service: str) -> ServiceMetrics:
    """Add GET /metrics and the counting middleware (outermost, so it also sees the
    answers of every other middleware, e.g. a rate limiter's 429s)."""
    metrics = create_metrics(service)
    metrics.in_flight.labels(service).set(0)
    app[METRICS] = metrics
    app.middlewares.insert(0, _middleware(metrics))
    app.router.add_get(METRICS_PATH, _expose)
    return metrics


def _route(request: web.Request) -> str:
    """The route's pattern ("/work", "/items/{id}"), never the raw path: one series
    per route, however many URLs clients try."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _middleware(metrics: ServiceMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == METRICS_PATH:
            return await handler(request)
        in_flight = metrics.in_flight.labels(metrics.service)
        in_flight.inc()
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            in_flight.dec()
            route = _route(request)
            metrics.requests.labels(metrics.service, request.method, route, str(status)).inc()
            metrics.latency.labels(metrics.service, request.method, route).observe(
                time.perf_counter() - started
            )

    return count


async def _expose(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
