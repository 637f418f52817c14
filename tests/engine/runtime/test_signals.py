"""A signal during asyncio work unwinds every task in order and raises Interrupted,
instead of surfacing inside whatever callback the loop happened to be running."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from labs.engine.runtime.signals import Interrupted, run_interruptible


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_cancels_every_task_runs_finally_and_raises(sig, caplog):
    unwound: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            unwound.append(name)

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), sig)
        try:
            await asyncio.gather(worker("a"), worker("b"))
        finally:
            unwound.append("main")

    before = signal.getsignal(sig)
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(Interrupted) as raised:
        run_interruptible(main())
    assert raised.value.signum == sig
    assert sorted(unwound) == ["a", "b", "main"]
    assert not caplog.records, "no task was left holding an exception"
    assert signal.getsignal(sig) == before, "the previous handler is back"


def test_result_passes_through_when_nothing_happens():
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_interruptible(answer()) == 42


def test_on_signal_runs_once_before_the_tasks_unwind():
    calls: list[tuple[int, bool]] = []
    cancelled = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        loop.call_later(0.06, os.kill, os.getpid(), signal.SIGTERM)  # a repeat: no 2nd call
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            await asyncio.sleep(0.1)  # clean-up takes a while: the repeat arrives now
            raise

    with pytest.raises(Interrupted):
        run_interruptible(main(), on_signal=lambda signum: calls.append((signum, bool(cancelled))))
    assert calls == [(signal.SIGINT, False)], "once, before the task saw its cancellation"
