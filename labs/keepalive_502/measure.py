"""keepalive-502's numbers: how much of the traffic rode a reused connection (the
client's count, bursts.csv from loadtests/synchronized_bursts.py) and which side closed
idle connections first (the api's /admin/stats).

`derive` returns them typed, as a `KeepaliveNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(KeepaliveNumbers)`) and its
asdict() view in `extra`."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.stats import every_replica, mapping, number, whole
from labs.engine.model.spec import DeriveContext
from labs.keepalive_502.scenario import REUSED_MIN_PCT, TRAFFIC_GAP_S

NAN = math.nan


class Burst(NamedTuple):
    """One row of bursts.csv: the idle gap before it (None for the first burst, which
    opens the pool), its requests and how many of them rode a reused connection."""

    gap_ms: float | None
    requests: int
    reused: int


@dataclass(frozen=True)
class KeepaliveNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    traffic_requests: int
    """Requests of the bursts that followed the traffic's gap."""
    reused_pct: float | None
    """Of those, the share on a reused connection, in % (None: no traffic measured)."""
    api_reused_pct: float | None
    """The api's own count: its requests on a reused connection, in %."""
    api_closed_first: int | None
    """Idle connections the api closed first (None: a replica could not tell, e.g. no
    /proc/net/tcp, or did not answer)."""

    @property
    def reused(self) -> float:
        """reused_pct; NaN when not measured, so a bound on it fails."""
        return NAN if self.reused_pct is None else self.reused_pct

    @property
    def closed_first(self) -> float:
        """api_closed_first; NaN when unknown, so a bound on it fails."""
        return NAN if self.api_closed_first is None else float(self.api_closed_first)

    def serves_traffic(self, min_traffic: int) -> bool:
        """The pool serves the traffic: >= REUSED_MIN_PCT of >= min_traffic requests reused."""
        return self.reused >= REUSED_MIN_PCT and self.traffic_requests >= min_traffic

    def reuse_text(self) -> str:
        shown = "n/a" if self.reused_pct is None else f"{self.reused_pct:.0f} %"
        return f"{shown} of the traffic rode a reused connection"

    def closed_text(self) -> str:
        closed = self.api_closed_first
        if closed is None:
            return "who closed idle connections first is unknown (no /proc/net/tcp, or no stats)"
        return f"the api closed {closed} idle connection{'' if closed == 1 else 's'} first"


def read_bursts(path: Path) -> tuple[Burst, ...]:
    """bursts.csv, one Burst per row; () without it."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return ()
    bursts = []
    for row in rows:
        gap = number(row.get("gap_ms"))
        bursts.append(
            Burst(
                None if math.isnan(gap) else gap,
                whole(row.get("requests")),
                whole(row.get("reused")),
            )
        )
    return tuple(bursts)


def traffic_reuse(bursts: Iterable[Burst]) -> tuple[int, int]:
    """(requests, of them on a reused connection) over the traffic's bursts: those that
    followed the traffic's ~1 s gap (not the first burst, which opens the pool, nor the
    grade's probes of longer or shorter gaps)."""
    traffic = [
        b for b in bursts if b.gap_ms is not None and math.isclose(b.gap_ms, TRAFFIC_GAP_S * 1000)
    ]
    return sum(b.requests for b in traffic), sum(b.reused for b in traffic)


def api_connections(result: VariantResult) -> tuple[int, int, int | None]:
    """(work requests, on a reused connection, connections the api closed first) summed
    over the api replicas' /admin/stats; closed first is None when any replica cannot
    tell (no /proc/net/tcp) or did not answer."""
    requests = reused = 0
    closed: int | None = 0
    for stats in every_replica(result, "api"):
        connections = mapping(stats.get("connections"))
        requests += whole(connections.get("requests"))
        reused += whole(connections.get("reused"))
        first = number(connections.get("closed_first"))
        closed = None if closed is None or math.isnan(first) else closed + int(first)
    return requests, reused, closed


def _pct(part: int, of: int) -> float | None:
    return round(100 * part / of, 1) if of else None


def derive(ctx: DeriveContext) -> KeepaliveNumbers:
    traffic, reused = traffic_reuse(read_bursts(ctx.out_dir / "bursts.csv"))
    api_requests, api_reused, closed_first = api_connections(ctx.result)
    return KeepaliveNumbers(
        traffic_requests=traffic,
        reused_pct=_pct(reused, traffic),
        api_reused_pct=_pct(api_reused, api_requests),
        api_closed_first=closed_first,
    )
