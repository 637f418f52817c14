"""What a service does when it is told to stop (SIGTERM), one of three modes.

- `default`: aiohttp's own `web.run_app` handling, unchanged. The listener closes,
  every idle keep-alive connection is closed at once, in-flight requests finish
  (up to --shutdown-timeout), then the process exits. Closing idle connections at
  once races a load balancer that is reusing one of them at that moment.
- `immediate`: no handler at all (SIGTERM's default action), which is what a
  service that never thought about shutdown does: the kernel ends the process and
  closes its sockets, in-flight requests included.
- `drain`: readiness goes false (/readyz 503), the listener closes (a proxy's new
  connection is refused, which nginx passes to the next server even for a POST,
  because nothing was sent; the connections the kernel had already completed are
  accepted first, see `accept_pending`), and existing connections keep being served, each
  response with `Connection: close`, so the proxy never reuses a connection the
  service is about to close. The service waits until every connection is gone:
  answered ones close after their response; idle ones are closed by the proxy
  when its own idle timeout ends. Only what is left at --shutdown-timeout is
  closed by the service. A drain is race-free when the proxy's upstream keep-alive
  timeout is shorter than --shutdown-timeout, and the orchestrator's kill grace
  longer than both.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import hdrs, web

ShutdownMode = Literal["default", "immediate", "drain"]
SHUTDOWN_MODES: tuple[ShutdownMode, ...] = ("default", "immediate", "drain")
DRAIN_POLL_S = 0.02


@dataclass
class Lifecycle:
    """One process's shutdown state, shared by its handlers (readiness) and the server."""

    draining: bool = False
    closing_responses: int = 0
    """Responses sent with `Connection: close` because the service was draining."""


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def install(app: web.Application) -> Lifecycle:
    """Give `app` a lifecycle (idempotent): while draining, every response tells the
    client to close the connection after it."""
    if LIFECYCLE in app:
        return app[LIFECYCLE]
    lifecycle = app[LIFECYCLE] = Lifecycle()

    async def close_when_draining(_request: web.BaseRequest, response: web.StreamResponse) -> None:
        if lifecycle.draining:
            # aiohttp has already chosen the Connection header by now: set both.
            response.force_close()
            response.headers[hdrs.CONNECTION] = "close"
            lifecycle.closing_responses += 1

    app.on_response_prepare.append(close_when_draining)
    return lifecycle


def draining(app: web.Application) -> bool:
    """True once a drain has begun: the service is not ready for new work."""
    lifecycle = app.get(LIFECYCLE)
    return lifecycle is not None and lifecycle.draining


@dataclass(frozen=True)
class DrainReport:
    duration_s: float
    connections_at_start: int
    accepted_at_close: int
    """Connections the kernel had completed but the service not yet accepted when the
    listener closed: accepted and served, where closing would have reset them."""
    closing_responses: int
    connections_left: int
    """Connections still open at the deadline, closed by the service (0 = race-free)."""

    def line(self, name: str) -> str:
        return (
            f"{name} drained in {self.duration_s:.2f} s: {self.connections_at_start} "
            f"connections at SIGTERM, {self.accepted_at_close} accepted from the backlog, "
            f"{self.closing_responses} responses with "
            f"Connection: close, {self.connections_left} left at the deadline"
        )


def listen(host: str, port: int) -> socket.socket:
    """The service's own listening socket (asyncio's defaults: SO_REUSEADDR, backlog
    100), so that `drain` can empty its accept queue before closing it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=100)


def accept_pending(listener: socket.socket) -> list[socket.socket]:
    """Every connection the kernel has completed on `listener` that nobody accepted
    yet. Closing a listener resets those, and a proxy may already have written a
    request into one (nginx passes a reset POST on to nobody: a 502). Call it right
    before the close, with no await between: what completes in between is still reset,
    a window of microseconds instead of an event-loop turn."""
    pending = []
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return pending
        connection.setblocking(False)
        pending.append(connection)


async def drain(
    runner: web.BaseRunner, lifecycle: Lifecycle, listener: socket.socket, timeout_s: float
) -> DrainReport:
    """Stop taking new connections on `listener` and wait (at most `timeout_s`) until the
    open ones have closed; `runner.cleanup()` afterwards closes what is left."""
    started = time.monotonic()
    server = runner.server
    at_start = len(server.connections) if server else 0
    lifecycle.draining = True
    backlog = accept_pending(listener)
    for site in list(runner.sites):
        await site.stop()  # closes the listener at once: BaseSite.stop never suspends
    loop = asyncio.get_running_loop()
    for connection in backlog:
        await loop.connect_accepted_socket(server, connection)
    while server and server.connections and time.monotonic() - started < timeout_s:
        await asyncio.sleep(DRAIN_POLL_S)
    return DrainReport(
        duration_s=time.monotonic() - started,
        connections_at_start=at_start,
        accepted_at_close=len(backlog),
        closing_responses=lifecycle.closing_responses,
        connections_left=len(server.connections) if server else 0,
    )


async def serve_draining(
    app: web.Application, args: argparse.Namespace, announce: Callable[[], None]
) -> None:
    """Serve until SIGINT/SIGTERM, then drain (see the module docstring) and exit."""
    lifecycle = install(app)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=args.keepalive_timeout,
        shutdown_timeout=args.shutdown_timeout,
        access_log=None,
    )
    await runner.setup()
    try:
        listener = listen(args.host, args.port)
        await web.SockSite(runner, listener).start()
        announce()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        report = await drain(runner, lifecycle, listener, args.shutdown_timeout)
        print(report.line(args.replica_id), flush=True)
    finally:
        await runner.cleanup()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shutdown-mode",
        choices=SHUTDOWN_MODES,
        default="default",
        help="on SIGTERM: default (aiohttp: close the listener and idle connections, finish "
        "in-flight requests), immediate (exit at once, dropping in-flight work), or drain "
        "(readiness false, Connection: close on every response, wait up to "
        "--shutdown-timeout for connections to close)",
    )
