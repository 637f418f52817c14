"""When a rolling restart is over, seen from the client side (no Locust import, so it
can be tested without gevent's monkey-patching).

Every api response carries `X-Replica-Boot`, an id its process drew at start-up: a
replica started again answers with a new one. A rollout that restarts R replicas N
times each is over once R x (N + 1) distinct boots have answered, whatever the topology
took for each restart (a process starts in a fraction of a second; a container takes
seconds, longer still when it ignores SIGTERM as PID 1 and is killed after the grace).
"""

from __future__ import annotations

from collections.abc import Mapping

BOOT_HEADER = "X-Replica-Boot"


class RolloutWatch:
    """Counts the distinct replica processes that have answered."""

    def __init__(self, expected_boots: int):
        if expected_boots < 0:
            raise ValueError("expected_boots must be >= 0 (0 = not watching)")
        self.expected = expected_boots
        self.boots: set[str] = set()
        self.done_at: float | None = None
        """When the last expected boot first answered (None: not yet)."""

    def saw(self, headers: Mapping[str, str] | None, now: float) -> bool:
        """Record a response's headers; True exactly once, when the rollout is over."""
        if not self.expected or self.done_at is not None or not headers:
            return False
        boot = headers.get(BOOT_HEADER)
        if not boot:
            return False  # nginx's own error pages carry no boot
        self.boots.add(boot)
        if len(self.boots) >= self.expected:
            self.done_at = now
            return True
        return False
