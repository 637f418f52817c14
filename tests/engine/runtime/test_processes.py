"""Stopping a run's children: all signalled at once and waited for together, so Ctrl-C
costs the slowest child's exit, not the sum of them all; and it says what it stops."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from labs.engine.runtime.processes import ProcessGroup, pid_alive

SLOW_EXIT_S = 1.0
# A child that takes SLOW_EXIT_S to exit on SIGTERM (as Locust finishing its users), and
# says "ready" once its handler is in place.
SLOW = f"""
import signal, sys, time
def stop(*_):
    time.sleep({SLOW_EXIT_S})
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""
# A child that ignores SIGTERM altogether: only SIGKILL ends it.
DEAF = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def start(group: ProcessGroup, names: list[str], code: str) -> None:
    children = [group.start(name, [sys.executable, "-c", code]) for name in names]
    deadline = time.monotonic() + 10
    while not all("ready" in c.log_path.read_text() for c in children):
        assert time.monotonic() < deadline, "fake children never became ready"
        time.sleep(0.02)


@pytest.fixture
def group(tmp_path: Path):
    group = ProcessGroup("test-stop-together", tmp_path / "logs")
    yield group
    group.stop_all(grace_s=0)


def test_stop_all_waits_for_the_children_together(group):
    start(group, ["locust", "locust", "locust"], SLOW)
    pids = group.pids()
    started = time.monotonic()
    group.stop_all()
    took = time.monotonic() - started
    assert not any(pid_alive(pid) for pid in pids)
    # One after another would take 3 x SLOW_EXIT_S; together, about one.
    assert SLOW_EXIT_S * 0.9 <= took < SLOW_EXIT_S * 2, took


def test_interrupt_says_what_it_stops_and_kills_what_ignores_sigterm(group):
    start(group, ["redis", "api-1", "api-2", "nginx"], DEAF)
    start(group, ["locust", "locust", "locust"], SLOW)
    assert group.describe() == "3 locust, nginx, 2 api, redis"
    started = time.monotonic()
    assert group.interrupt(grace_s=0.5) == "3 locust, nginx, 2 api, redis"
    assert group.interrupt() == "", "said once"
    for child in list(group.children):  # as the topology stops its own, one by one
        group.stop(child)
    group.stop_all()
    took = time.monotonic() - started
    assert group.describe() == ""
    # Every child got SIGTERM at interrupt(), and the deaf ones SIGKILL 0.5 s later:
    # the whole stop is bounded by the slowest, not the sum (7 children).
    assert took < SLOW_EXIT_S + 1.0, took
