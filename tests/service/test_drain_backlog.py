"""The drain's two races at the listening socket (services.common.shutdown.Listener).

The server runs in the test's own event loop, so the test decides what the loop has done
with the clients' connections when the drain begins: nothing yet (they wait in the
kernel's accept queue), or accepted but not yet handed to aiohttp, as happens when
SIGTERM and the connections arrive during one stall of the service.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from services.common.shutdown import (
    Lifecycle,
    Listener,
    accept_pending,
    drain,
    install,
)

REQUEST = b"POST /orders HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\norder"


async def stored(_request: web.Request) -> web.Response:
    return web.Response(status=201, text="stored")


def answer(client: socket.socket) -> bytes:
    """Everything the server sends until it closes; ConnectionResetError if it resets."""
    client.settimeout(5)
    received = b""
    while chunk := client.recv(4096):
        received += chunk
    return received


@dataclass
class Service:
    runner: web.AppRunner
    lifecycle: Lifecycle
    listener: Listener
    port: int

    def post(self, n: int) -> list[socket.socket]:
        """n connections, each with a POST written into it; the loop does not run."""
        clients = [socket.create_connection(("127.0.0.1", self.port), timeout=5) for _ in range(n)]
        for client in clients:
            client.sendall(REQUEST)
        return clients


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    app = web.Application()
    app.router.add_post("/orders", stored)
    lifecycle = install(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = Listener("127.0.0.1", port, runner.server)
    yield Service(runner, lifecycle, listener, port)
    await runner.cleanup()


async def drained_answers(service: Service, clients: list[socket.socket]) -> list[bytes]:
    """What each client gets when the service drains and then exits (serve_draining)."""

    async def stop() -> None:
        report = await drain(service.runner, service.lifecycle, service.listener, 3)
        assert report.connections_left == 0
        await service.runner.cleanup()

    stopped = asyncio.create_task(stop())
    answers = await asyncio.gather(*(asyncio.to_thread(answer, c) for c in clients))
    await stopped
    for client in clients:
        client.close()
    return answers


def served(answers: list[bytes]) -> None:
    for received in answers:
        assert received.startswith(b"HTTP/1.1 201"), received
        assert b"Connection: close" in received, "served as part of the drain"


async def test_connections_waiting_in_the_accept_queue_are_served(service: Service):
    clients = service.post(3)  # nobody has accepted these yet
    served(await drained_answers(service, clients))


async def test_connections_accepted_but_not_yet_handed_off_are_served(service: Service):
    """An asyncio Server drops these (CPython gh-109564): they hang until the process
    exits and are then reset."""
    clients = service.post(3)
    assert service.listener.accept() == 3  # the reader callback ran; the hand-offs did not
    served(await drained_answers(service, clients))


async def test_a_drained_listener_refuses_new_connections(service: Service):
    await drained_answers(service, [])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", service.port), timeout=5)


def test_closing_a_listener_resets_what_it_did_not_accept():
    """Why the drain accepts before it closes: the kernel completes the handshake on its
    own, and a close resets every connection still queued, the request written into it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=5)
        queued.sendall(REQUEST)
    with queued, pytest.raises(ConnectionResetError):
        answer(queued)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5)
        accepted = accept_pending(listener)
    assert len(accepted) == 1
    with client, accepted[0]:
        accepted[0].settimeout(5)
        client.sendall(b"x")
        assert accepted[0].recv(1) == b"x", "an accepted connection outlives its listener"
