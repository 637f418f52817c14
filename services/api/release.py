"""Which release of the api a process is, and its cold start (the deploys lab).

`--release v2` names the release: every work response says it (`X-Release`) and so
does /admin/stats. A bad release is the fault switch set at start-up
(`--error-status 500 --error-rate 0.3`). `--cold-start-s S --cold-start-ms M` makes
the process cold for its first S seconds of traffic (counted from its first work
request, as a JIT, a connection pool or a cache warms up on real requests): while
cold it serves one work request at a time, each taking M ms, so it keeps up only
with 1000 / M requests per second. Off by default.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

RELEASE_HEADER = "X-Release"


@dataclass(frozen=True)
class ReleaseConfig:
    name: str = ""
    cold_start_s: float = 0.0
    cold_start_ms: float = 0.0


class ColdStart:
    """Serialises work requests, each slowed by `cold_start_ms`, while the process is cold."""

    def __init__(self, config: ReleaseConfig) -> None:
        self.config = config
        self.first_at: float | None = None
        self.lock = asyncio.Lock()
        self.cold_served = 0

    def cold(self) -> bool:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        return now - self.first_at < self.config.cold_start_s

    async def serve(self) -> None:
        """Wait for the one cold slot and do the cold work; at once when warm."""
        if not self.config.cold_start_s or not self.cold():
            return
        async with self.lock:
            await asyncio.sleep(self.config.cold_start_ms / 1000)
            self.cold_served += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.config.name,
            "cold_start_s": self.config.cold_start_s,
            "cold_start_ms": self.config.cold_start_ms,
            "cold_served": self.cold_served,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("release (the deploys lab)")
    group.add_argument("--release", default="", help="release name, sent as X-Release")
    group.add_argument(
        "--cold-start-s", type=float, default=0.0, help="cold for this long (0 = never)"
    )
    group.add_argument(
        "--cold-start-ms", type=float, default=50.0, help="work per request while cold (ms)"
    )


def config_from_args(args: argparse.Namespace) -> ReleaseConfig:
    """The release the command line names; ValueError on bad values."""
    if not 0 <= args.cold_start_s <= 600:
        raise ValueError("--cold-start-s must be between 0 and 600")
    if not 0 <= args.cold_start_ms <= 60_000:
        raise ValueError("--cold-start-ms must be between 0 and 60000")
    return ReleaseConfig(args.release, args.cold_start_s, args.cold_start_ms)
