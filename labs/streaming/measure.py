"""streaming's measurements: each subscriber's connections and events, read from the
CSVs loadtests/streams.py writes (`streams.csv`, `stream_events.csv`), and the stream
service's own counts (/admin/stats)."""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from labs.engine.analysis import stats as S
from labs.engine.analysis.metrics import VariantResult, bucket_index, percentile
from labs.engine.model.spec import DeriveContext

STREAMS_FILE, EVENTS_FILE = "streams.csv", "stream_events.csv"
"""What loadtests/streams.py writes next to requests.csv."""
OPEN_STATUS = {"sse": 200, "ws": 101}
SETTLE_S = 1.0
SERVER_COUNTS = ("events_sent", "events_replayed", "heartbeats", "resumed_streams", "ws_refused")

Line = tuple[tuple[float, ...], tuple[float, ...]]


class Connection(NamedTuple):
    user: str
    number: int
    transport: str
    start_s: float
    end_s: float
    status: int
    outcome: str
    """ended (by the server) | cut (dropped mid-stream) | refused | failed | open."""
    last_event_id: str
    since_s: float
    """The subscription's start its URL named (`?since=`), 0: the global feed."""


class Event(NamedTuple):
    user: str
    connection: int
    id: int
    sent_s: float
    received_s: float

    @property
    def delay_ms(self) -> float:
        return (self.received_s - self.sent_s) * 1000


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_connections(folder: Path) -> list[Connection]:
    return [
        Connection(
            r["user"],
            int(r["connection"]),
            r["transport"],
            float(r["start_s"]),
            float(r["end_s"]),
            int(r["status"]),
            r["outcome"],
            r["last_event_id"],
            float(r.get("since_s") or 0),
        )
        for r in _rows(folder / STREAMS_FILE)
    ]


def read_events(folder: Path) -> list[Event]:
    return [
        Event(r["user"], int(r["connection"]), int(r["id"]), float(r["sent_s"]),
              float(r["received_s"]))
        for r in _rows(folder / EVENTS_FILE)
    ]  # fmt: skip


def gaps(ids: Iterable[int], owed_until: int = 0) -> tuple[int, int]:
    """(ids missing, ids received twice). Missing: from the first id received to the last
    received or `owed_until`, whichever is later, the ids that never arrived."""
    seen = Counter(ids)
    if not seen:
        return 0, 0
    low, high = min(seen), max(max(seen), owed_until)
    return (high - low + 1) - len(seen), sum(n - 1 for n in seen.values())


def owed_until(connections: Sequence[Connection], interval_s: float, first_s: float) -> int:
    """The last id of the feed a subscriber was owed: the last due before its last
    connection started (which told the server, by Last-Event-ID or not, where it had
    got to) among those open for SETTLE_S (time to be sent what it had missed); 0
    without a feed interval. The service's schedule: event k is due at since + first +
    (k - 1) x interval, or at k x interval on the global feed (since 0)."""
    open_long = [c for c in connections if c.end_s - c.start_s >= SETTLE_S]
    if not open_long or not interval_s > 0:
        return 0
    last = max(open_long, key=lambda c: c.start_s)
    first = first_s if last.since_s > 0 and first_s > 0 else interval_s
    return max(0, math.ceil((last.start_s - last.since_s - first) / interval_s))


@dataclass(frozen=True)
class StreamNumbers:
    """One variant's numbers; results.json holds them as its `extra`, field by field."""

    subscribers: int
    connections: int
    handshakes_ok: int
    handshakes_failed: int
    """Connections refused (no 200 / 101) or failed before an answer."""
    events: int
    delay_p50_ms: float
    delay_p99_ms: float
    delay_max_ms: float
    cuts: int
    """Streams that dropped mid-stream (the server had not ended them)."""
    fewest_cuts: int
    """The fewest cuts any subscriber saw."""
    resumed: int
    """Connections that sent Last-Event-ID."""
    lost: int
    """The feed's ids a subscriber never got, from the first it got to the last it was
    owed (`owed_until`)."""
    duplicates: int
    peak_reconnects_per_s: int
    """The most reconnections after a cut that started within one second."""
    server_events_sent: int
    server_replayed: int
    server_heartbeats: int
    server_resumed: int
    server_ws_refused: int
    delay_p99: Line
    reconnects: Line

    def steady(self, min_events: int, live_ms: float) -> bool:
        """A live feed that holds: nothing cut or lost, enough events, each on time."""
        return (
            self.cuts == 0
            and self.lost == 0
            and self.events >= min_events
            and self.delay_p99_ms <= live_ms
        )


def _per_second(times: Sequence[float], origin_s: float) -> Line:
    counts = Counter(bucket_index(t - origin_s, 1.0) for t in times if t >= origin_s)
    seconds = range(max(counts, default=-1) + 1)
    return tuple(float(i) for i in seconds), tuple(float(counts[i]) for i in seconds)


def _delay_series(events: Sequence[Event], origin_s: float) -> Line:
    by_second: dict[int, list[float]] = defaultdict(list)
    for e in events:
        if e.received_s >= origin_s:
            by_second[bucket_index(e.received_s - origin_s, 1.0)].append(e.delay_ms)
    keys = sorted(by_second)
    return tuple(float(k) for k in keys), tuple(percentile(by_second[k], 99) for k in keys)


def numbers(
    connections: Sequence[Connection], events: Sequence[Event], result: VariantResult
) -> StreamNumbers:
    delays = [e.delay_ms for e in events]
    users = sorted({c.user for c in connections})
    cut = Counter(c.user for c in connections if c.outcome == "cut")
    ids: dict[str, list[int]] = defaultdict(list)
    for e in events:
        ids[e.user].append(e.id)
    stream = S.service_stats(result, "stream")
    interval_s = S.number(stream.get("interval_s"))
    first_s = S.number(stream.get("first_event_s"), 0.0)
    by_user: dict[str, list[Connection]] = defaultdict(list)
    for c in connections:
        by_user[c.user].append(c)
    missing = [gaps(ids[u], owed_until(by_user[u], interval_s, first_s)) for u in users]
    outcome = {(c.user, c.number): c.outcome for c in connections}
    after_cut = [c.start_s for c in connections if outcome.get((c.user, c.number - 1)) == "cut"]
    reconnects = _per_second(after_cut, result.origin_s)
    counts = {k: S.whole(S.mapping(stream.get("counts")).get(k)) for k in SERVER_COUNTS}
    opened = sum(c.status == OPEN_STATUS.get(c.transport, 200) for c in connections)
    return StreamNumbers(
        subscribers=len(users),
        connections=len(connections),
        handshakes_ok=opened,
        handshakes_failed=sum(c.outcome in ("refused", "failed") for c in connections),
        events=len(events),
        delay_p50_ms=round(percentile(delays, 50), 1),
        delay_p99_ms=round(percentile(delays, 99), 1),
        delay_max_ms=round(max(delays, default=0.0), 1),
        cuts=sum(cut.values()),
        fewest_cuts=min((cut[u] for u in users), default=0),
        resumed=sum(bool(c.last_event_id) for c in connections),
        lost=sum(m for m, _ in missing),
        duplicates=sum(d for _, d in missing),
        peak_reconnects_per_s=int(max(reconnects[1], default=0)),
        server_events_sent=counts["events_sent"],
        server_replayed=counts["events_replayed"],
        server_heartbeats=counts["heartbeats"],
        server_resumed=counts["resumed_streams"],
        server_ws_refused=counts["ws_refused"],
        delay_p99=_delay_series(events, result.origin_s),
        reconnects=reconnects,
    )


def derive(ctx: DeriveContext) -> StreamNumbers:
    return numbers(read_connections(ctx.out_dir), read_events(ctx.out_dir), ctx.result)
