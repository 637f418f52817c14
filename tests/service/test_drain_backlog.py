"""The drain's one kernel-level race: connections completed but not yet accepted when the
listener closes (services.common.shutdown.accept_pending).

The server runs in the test's own event loop, so the test decides that the loop does
not run between the clients' connects and the drain: their connections sit in the
kernel's accept queue, as a proxy's do when SIGTERM lands between two accepts.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from services.common.shutdown import accept_pending, drain, install, listen

REQUEST = b"POST /orders HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\norder"


async def ok(_request: web.Request) -> web.Response:
    return web.Response(status=201, text="stored")


def answer(client: socket.socket) -> bytes:
    """Everything the server sends until it closes; ConnectionResetError if it resets."""
    client.settimeout(5)
    received = b""
    while chunk := client.recv(4096):
        received += chunk
    return received


async def test_drain_serves_connections_waiting_in_the_accept_queue():
    app = web.Application()
    app.router.add_post("/orders", ok)
    lifecycle = install(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    listener = listen("127.0.0.1", 0)
    await web.SockSite(runner, listener).start()
    port = listener.getsockname()[1]
    try:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for client in clients:
            client.sendall(REQUEST)  # the loop has not run: nobody accepted these yet
        drained = asyncio.create_task(drain(runner, lifecycle, listener, 3.0))
        answers = await asyncio.gather(*(asyncio.to_thread(answer, c) for c in clients))
        report = await drained
    finally:
        await runner.cleanup()

    for received in answers:
        assert received.startswith(b"HTTP/1.1 201"), received
        assert b"Connection: close" in received, "served as part of the drain"
    assert report.accepted_at_close == 3
    assert report.connections_left == 0


def test_closing_a_listener_resets_what_it_did_not_accept():
    """Why accept_pending exists: the kernel completes the handshake on its own, and a
    close resets every connection still queued, with the request written into it."""
    listener = listen("127.0.0.1", 0)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port), timeout=5)
    queued.sendall(REQUEST)
    listener.close()
    try:
        answer(queued)
        reset = False
    except ConnectionResetError:
        reset = True
    assert reset, "the closed listener reset the queued connection"

    listener = listen("127.0.0.1", 0)
    listener.setblocking(False)
    client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5)
    accepted = accept_pending(listener)
    listener.close()
    assert len(accepted) == 1
    accepted[0].settimeout(5)
    client.sendall(b"x")
    assert accepted[0].recv(1) == b"x", "an accepted connection outlives its listener"
    for s in (client, *accepted, queued):
        s.close()
