"""Where a run's wall time goes: per variant, starting the topology, Locust's spin-up
(its start to the first request), the load (first request to the last answer), Locust's
exit (last answer to the exit, workers' records merged), collecting the services'
numbers, stopping the topology and measuring; per run, the set-up before the first
variant and judging + writing the report after the last. `lab check --timings` prints
it; every run writes it to timings.json."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from labs.engine.analysis.metrics import Request

PHASES = ("start", "spinup", "load", "exit", "collect", "stop", "measure")


@dataclass
class Stopwatch:
    """Seconds per phase, added up (a phase may be timed more than once)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def split_load(
    watch: Stopwatch, started_epoch: float, ended_epoch: float, requests: Sequence[Request]
) -> None:
    """Split the Locust wall time (`started_epoch` to `ended_epoch`, its exit and the
    workers' merge included) into spin-up, load and exit, by the first request's start
    and the last answer."""
    total = ended_epoch - started_epoch
    if not requests:
        watch.add("load", total)
        return
    first = min(r.start_s for r in requests)
    last = max(r.start_s + r.response_ms / 1000 for r in requests)
    spinup = min(max(0.0, first - started_epoch), total)
    load = min(max(0.0, last - first), total - spinup)
    watch.add("spinup", spinup)
    watch.add("load", load)
    watch.add("exit", total - spinup - load)


def load_ran(
    planned_s: Mapping[str, float], variants: Mapping[str, Mapping[str, float]], parallel: bool
) -> float:
    """The seconds of load the variants ran: per variant from its first request to
    Locust's exit (`load` + `exit`), at most its planned duration, since a locustfile may
    end the run sooner (an open-loop schedule that is over, a rolling restart that is
    done) and a stream is recorded when its headers arrive; summed over variants run in
    turn, the longest when they run at once."""
    each = [
        min(planned_s[name], phases.get("load", 0.0) + phases.get("exit", 0.0))
        for name, phases in variants.items()
    ]
    return max(each, default=0.0) if parallel else sum(each)


@dataclass(frozen=True)
class RunTimings:
    wall_s: float
    setup_s: float
    report_s: float
    load_s: float
    """The seconds of load the variants ran (`load_ran`): what the wall time is judged
    against."""
    variants: dict[str, dict[str, float]]

    def critical(self, parallel: bool) -> dict[str, float]:
        """Phase seconds on the wall-clock path: summed over variants run in turn, the
        slowest variant's when they run at once."""
        if not self.variants:
            return {}
        if parallel:
            return max(self.variants.values(), key=lambda phases: sum(phases.values()))
        return {p: sum(v.get(p, 0.0) for v in self.variants.values()) for p in PHASES}

    @property
    def ratio(self) -> float:
        """Wall time over the seconds of load (0 without load)."""
        return self.wall_s / self.load_s if self.load_s else 0.0

    def phases_text(self, parallel: bool) -> str:
        """ "start 5.3, spinup 2.0, load 67.0, ..., setup 0.0, report 3.0" (seconds)."""
        phases = self.critical(parallel)
        parts = [f"{p} {phases.get(p, 0.0):.1f}" for p in PHASES]
        return ", ".join([*parts, f"setup {self.setup_s:.1f}", f"report {self.report_s:.1f}"])

    def line(self, lab: str, parallel: bool) -> str:
        return (
            f"{lab}: time {self.wall_s:.1f} s for {self.load_s:.1f} s of load "
            f"({self.ratio:.2f}x): {self.phases_text(parallel)}"
        )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
