"""What the fuzz tests share: a real aiohttp app on an ephemeral 127.0.0.1 port in a
background thread (hypothesis drives it from the test thread with a plain blocking
client, so every generated request is a real HTTP exchange), and the request strategies."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
from collections.abc import Callable, Iterator

from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


@contextlib.contextmanager
def serve_in_thread(make_app: Callable[[], web.Application]) -> Iterator[int]:
    """Serve `make_app()` (built on the server's own loop) and yield its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(make_app(), keepalive_timeout=30)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state["runner"], state["port"] = runner, runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.start()
    assert ready.wait(10), "server did not start"
    try:
        yield int(state["port"])  # type: ignore[call-overload]
    finally:
        runner: web.AppRunner = state["runner"]  # type: ignore[assignment]
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def send(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    """One request on a fresh connection: (status, Content-Type)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type", "")
        response.read()
        return response.status, content_type
    finally:
        connection.close()


METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-Api-Key", "Idempotency-Key", "Accept", "X-Whatever"]),
    header_values,
    max_size=3,
)


def paths(known: list[str]) -> st.SearchStrategy[str]:
    """The app's own routes, and arbitrary ones."""
    return st.one_of(
        st.sampled_from(known),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/%?&=.-_", max_size=30).map(
            lambda p: "/" + p
        ),
    )


SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
