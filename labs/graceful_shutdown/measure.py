"""graceful-shutdown's measurements: what the clients saw (failed requests by status,
failed POSTs), the orders reconciled with the store (labs/engine/analysis/orders.py),
nginx's upstream resets, the restarts that happened, and the drains the api replicas
reported on their way out.

`derive` returns them typed, as a `GracefulNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(GracefulNumbers)`) and its asdict()
view in `extra`, field by field."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.analysis.metrics import Request, VariantResult
from labs.engine.analysis.orders import reconcile_run
from labs.engine.analysis.windows import fault_events
from labs.engine.model.spec import DeriveContext
from labs.engine.topology.nginx import UPSTREAM_RESET_KINDS
from labs.graceful_shutdown.scenario import MIN_REQUESTS, REPLICAS, ROUNDS

POST_NAME = "/orders"
DRAIN_LINE = re.compile(
    r"drained in (?P<s>[\d.]+) s: (?P<conns>\d+) connections at SIGTERM, (?P<backlog>\d+) "
    r"accepted from the backlog, (?P<closing>\d+) responses with Connection: close, "
    r"(?P<left>\d+) left at the deadline"
)
"""The line services.common.shutdown.DrainReport prints when a drain ends."""


@dataclass(frozen=True)
class Drain:
    """One replica's drain, as it reported it."""

    duration_s: float
    connections: int
    backlog: int
    closing_responses: int
    left: int


@dataclass(frozen=True)
class GracefulNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    failed: int
    """Requests that got no 2xx (status 0: no response at all)."""
    failed_by_status: Mapping[str, int]
    posts: int
    failed_posts: int
    failed_gets: int
    finished_intents: int
    orders_stored: int
    lost_posts: int
    """Finished intents with no order in the store."""
    duplicates: int
    mismatches: int
    upstream_resets: int
    """nginx error-log entries of an upstream closing or resetting a connection."""
    restarts: int
    """Replicas started again mid-run (each start is recorded once the replica is ready)."""
    replicas_restarted: int
    last_start_s: float
    """When the last restart began (the engine applies it then)."""
    drains: int
    drain_max_s: float
    drain_backlog_accepted: int
    """Connections accepted from the backlog as the listener closed (reset otherwise)."""
    drain_closing_responses: int
    drain_connections_left: int

    @property
    def wrong(self) -> int:
        """Everything a clean rollout must keep at 0."""
        return self.failed + self.lost_posts + self.duplicates + self.upstream_resets

    def rolled_out_clean(self, requests: int, rounds: int = ROUNDS) -> bool:
        """A whole rolling restart happened and nothing was lost: 0 failed requests, 0 lost
        or duplicated orders, not even a reset nginx hid by retrying a GET."""
        return (
            self.wrong == 0
            and requests >= MIN_REQUESTS
            and self.restarts >= rounds * REPLICAS
            and self.replicas_restarted == REPLICAS
        )


def ok(status: int) -> bool:
    return 200 <= status < 300


def failures(requests: Sequence[Request]) -> Counter[int]:
    """Client-visible failures by status (0 = no response at all)."""
    return Counter(q.status for q in requests if not ok(q.status))


def read_drains(log_dir: Path) -> list[Drain]:
    """The drain summaries the api replicas printed on their way out."""
    drains = []
    for log in sorted(log_dir.glob("api-*.log")):
        for match in DRAIN_LINE.finditer(log.read_text(errors="replace")):
            counts = (int(match[key]) for key in ("conns", "backlog", "closing", "left"))
            drains.append(Drain(float(match["s"]), *counts))
    return drains


def derive(ctx: DeriveContext) -> GracefulNumbers:
    failed = failures(ctx.requests)
    failed_posts = sum(1 for q in ctx.requests if q.name == POST_NAME and not ok(q.status))
    r, _ = reconcile_run(ctx.out_dir)
    drains = read_drains(ctx.out_dir / "logs")
    starts = [e for e in fault_events(ctx.result) if e.action == "start"]
    return GracefulNumbers(
        failed=sum(failed.values()),
        failed_by_status={str(code): n for code, n in sorted(failed.items())},
        posts=sum(1 for q in ctx.requests if q.name == POST_NAME),
        failed_posts=failed_posts,
        failed_gets=sum(failed.values()) - failed_posts,
        finished_intents=r.finished,
        orders_stored=r.orders,
        lost_posts=r.lost,
        duplicates=r.duplicates,
        mismatches=r.mismatches,
        upstream_resets=ctx.result.nginx_error_count(*UPSTREAM_RESET_KINDS),
        restarts=len(starts),
        replicas_restarted=len({(e.service, e.replica) for e in starts}),
        last_start_s=max((e.t_s for e in starts), default=0.0),
        drains=len(drains),
        drain_max_s=round(max((d.duration_s for d in drains), default=0.0), 2),
        drain_backlog_accepted=sum(d.backlog for d in drains),
        drain_closing_responses=sum(d.closing_responses for d in drains),
        drain_connections_left=sum(d.left for d in drains),
    )


def describe_failures(result: VariantResult) -> str:
    """E.g. "23 of 1,840 requests failed (1.2 %: 19 x 502, 4 x 0)"."""
    n, total = result.numbers(GracefulNumbers), result.requests
    kinds = ", ".join(f"{count} x {code}" for code, count in n.failed_by_status.items())
    share = 100 * n.failed / total if total else 0.0
    shown = f": {kinds}" if kinds else ""
    return f"{n.failed:g} of {total:,} requests failed ({share:.1f} %{shown})"
