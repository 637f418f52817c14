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
  accepted first, see `Listener`), and existing connections keep being served, each
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


def accept_pending(sock: socket.socket) -> list[socket.socket]:
    """Every connection the kernel has completed on the listening `sock` that nobody
    accepted yet (`sock` is non-blocking)."""
    pending = []
    while True:
        try:
            connection, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return pending
        connection.setblocking(False)
        pending.append(connection)


class Listener:
    """The draining service's listening socket, accepted here rather than by an asyncio
    Server, so that closing it loses no connection the kernel has completed:

    - closing a listener resets every connection in its accept queue, and a proxy may
      already have written a request into one (nginx passes a reset POST on to nobody:
      a 502). `close()` accepts them first, with no await before the socket closes: what
      completes in those microseconds is still reset.
    - an asyncio Server hands each accepted socket to its protocol one loop turn later,
      and a `Server.close()` in between drops it silently (CPython gh-109564: the
      transport's `Server._attach` asserts, the error is swallowed, and the socket is
      reset only when the process exits). Here `close()` waits for every hand-off."""

    def __init__(self, host: str, port: int, server: web.Server) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=100)
        self._sock.setblocking(False)
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._handoffs: set[asyncio.Task[object]] = set()
        self._loop.add_reader(self._sock.fileno(), self.accept)

    def accept(self) -> int:
        """Take every connection the kernel has completed and hand each to the server
        (the socket's reader callback); returns how many."""
        pending = accept_pending(self._sock)
        for connection in pending:
            handoff = self._loop.create_task(
                self._loop.connect_accepted_socket(self._server, connection)
            )
            self._handoffs.add(handoff)
            handoff.add_done_callback(self._handed_off)
        return len(pending)

    def _handed_off(self, handoff: asyncio.Task[object]) -> None:
        self._handoffs.discard(handoff)
        if not handoff.cancelled():
            handoff.exception()  # the client left before its hand-off: nothing to serve

    async def close(self) -> int:
        """Stop listening (new connections are refused from here on) and wait until
        every accepted connection is the server's; returns how many were still in the
        accept queue."""
        self._loop.remove_reader(self._sock.fileno())
        queued = self.accept()
        self._sock.close()
        await asyncio.gather(*self._handoffs, return_exceptions=True)
        return queued


async def drain(
    runner: web.BaseRunner, lifecycle: Lifecycle, listener: Listener, timeout_s: float
) -> DrainReport:
    """Stop taking new connections and wait (at most `timeout_s`) until the open ones
    have closed; `runner.cleanup()` afterwards closes what is left."""
    started = time.monotonic()
    server = runner.server
    at_start = len(server.connections) if server else 0
    lifecycle.draining = True
    queued = await listener.close()
    while server and server.connections and time.monotonic() - started < timeout_s:
        await asyncio.sleep(DRAIN_POLL_S)
    return DrainReport(
        duration_s=time.monotonic() - started,
        connections_at_start=at_start,
        accepted_at_close=queued,
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
    assert runner.server is not None
    try:
        listener = Listener(args.host, args.port, runner.server)
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
