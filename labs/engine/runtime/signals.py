"""Signals as exceptions, so every `finally` on the stack runs on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TypeVar

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_GRACE_S = 10.0
"""Repeats this soon after the first signal are ignored: clean-up is under way."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived.

    A KeyboardInterrupt on purpose: asyncio re-raises only KeyboardInterrupt and
    SystemExit from the callbacks it runs; any other exception raised by a signal
    handler inside a callback (a timer, say) is logged and swallowed, and the run
    would go on as if nothing had happened.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into `Interrupted`. A repeat within REPEAT_GRACE_S
    is ignored, so a second Ctrl-C cannot cut the clean-up short; a later one raises
    again, so a signal lost somewhere cannot leave the runner deaf."""
    first_at: float | None = None

    def handler(signum: int, _frame: object) -> None:
        nonlocal first_at
        now = time.monotonic()
        if first_at is not None and now - first_at < REPEAT_GRACE_S:
            return
        first_at = now
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


T = TypeVar("T")


def run_interruptible(
    coro: Coroutine[object, object, T], on_signal: Callable[[int], None] | None = None
) -> T:
    """asyncio.run, where SIGINT/SIGTERM/SIGHUP cancel the main task instead of
    raising wherever the loop happens to be: every await sees a CancelledError,
    every `finally` runs in order, no task is left holding an exception. Raises
    `Interrupted` once the loop has unwound. `on_signal(signum)` runs first, once
    (e.g. to say what is being stopped and to signal every child at once)."""
    received: list[int] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def cancel(signum: int) -> None:
            if not received:
                received.append(signum)
                if on_signal is not None:
                    on_signal(signum)
                task.cancel()

        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, cancel, sig)
        try:
            return await coro
        finally:
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)

    previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
    try:
        result = asyncio.run(main())
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if received:
        raise Interrupted(received[0])
    return result
