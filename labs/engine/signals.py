"""Signals as exceptions, so every `finally` on the stack runs on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; raised so every `finally` on the stack runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Turn the first SIGINT/SIGTERM/SIGHUP into `Interrupted`; ignore repeats, so a
    second Ctrl-C cannot cut the clean-up short."""
    interrupted = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
