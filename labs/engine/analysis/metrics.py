"""Numbers from raw request records: counts by status, percentiles, time series."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

Derived = TypeVar("Derived")


@dataclass(frozen=True)
class Request:
    start_s: float
    """Wall-clock time the request started (epoch seconds)."""
    name: str
    status: int
    """HTTP status, or 0 when no response came back (connection error)."""
    response_ms: float
    replica: str = ""
    """The replica that answered (its X-Replica header); "" when none said (no response,
    nginx's own answer, or a file recorded before the column existed)."""


def read_requests(path: Path) -> list[Request]:
    """The recorder's CSV; the `replica` column is optional (older files lack it)."""
    with path.open(newline="") as handle:
        return [
            Request(
                float(row["start_s"]),
                row["name"],
                int(row["status"]),
                float(row["response_ms"]),
                row.get("replica") or "",
            )
            for row in csv.DictReader(handle)
        ]


def replica_counts(requests: Iterable[Request]) -> dict[str, int]:
    """Requests answered per replica (X-Replica), by name; unnamed answers are left out."""
    counts = Counter(r.replica for r in requests if r.replica)
    return dict(sorted(counts.items()))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was really measured."""
    if not values:
        return 0.0
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def status_counts(requests: Iterable[Request]) -> dict[str, int]:
    counts = Counter(str(r.status) for r in requests)
    return dict(sorted(counts.items(), key=lambda item: int(item[0])))


def status_class(status: int | str) -> str:
    """Status class: "2xx" .. "5xx", or "no response" for a connection error (status 0)."""
    code = int(status)
    return f"{code // 100}xx" if code else "no response"


@dataclass(frozen=True)
class Bucket:
    t_s: float
    """Start of the bucket, seconds since the first request."""
    requests: int
    status: dict[str, int]
    p50_ms: float
    p99_ms: float
    p95_ms: float = 0.0
    """Percentiles of an empty bucket are 0; plots show them as gaps (`requests == 0`)."""

    def classes(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for code, n in self.status.items():
            counts[status_class(code)] += n
        return dict(counts)


def bucket_index(offset_s: float, bucket_s: float) -> int:
    """Which bucket an offset falls in, computed in whole microseconds so that
    0.3 s lands in bucket 3 of 0.1 s (float division says 2.9999...)."""
    return int(round(offset_s * 1e6) // round(bucket_s * 1e6))


def time_series(
    requests: Sequence[Request], bucket_s: float = 1.0, origin: float | None = None
) -> list[Bucket]:
    """Requests per bucket by start time; empty buckets inside the run are kept.
    `origin` is t = 0 (default: the first request); earlier requests are dropped."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    if not requests:
        return []
    if origin is None:
        origin = min(r.start_s for r in requests)
    grouped: dict[int, list[Request]] = {}
    for r in requests:
        index = bucket_index(r.start_s - origin, bucket_s)
        if index >= 0:
            grouped.setdefault(index, []).append(r)
    buckets = []
    for index in range(max(grouped, default=-1) + 1):
        members = grouped.get(index, [])
        latencies = [r.response_ms for r in members]
        buckets.append(
            Bucket(
                t_s=round(index * bucket_s, 6),
                requests=len(members),
                status=status_counts(members),
                p50_ms=round(percentile(latencies, 50), 3),
                p99_ms=round(percentile(latencies, 99), 3),
                p95_ms=round(percentile(latencies, 95), 3),
            )
        )
    return buckets


def is_success(status: int) -> bool:
    return 200 <= status < 400


@dataclass(frozen=True)
class VariantResult:
    """One variant's measurements, built once by the runner and never changed."""

    variant: str
    duration_s: float
    requests: int
    failures: int
    status: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    rps: float
    nginx_errors: dict[str, int] = field(default_factory=dict)
    upstream_attempts: dict[str, int] = field(default_factory=dict)
    upstream_retried: int = 0
    series: list[Bucket] = field(default_factory=list)
    """1 s buckets of the client's view; `buckets(0.1)` for finer ones."""
    origin_s: float = 0.0
    """Epoch time of the first request: t = 0 of `series`, `events` and `samples`."""
    events: list[dict[str, object]] = field(default_factory=list)
    """What the engine did during the load: {"t_s", "what", ...} (fault steps)."""
    services: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    """Each replica's /admin/stats at the end of the load, by service."""
    samples: list[dict[str, object]] = field(default_factory=list)
    """Periodic /admin/stats: {"t_s", "service", "replica", "stats"} (see Lab.sample_interval_s)."""
    extra: dict[str, object] = field(default_factory=dict)
    """The lab's own numbers (Lab.derive)."""
    artifacts: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    """Requests answered per replica, from each response's X-Replica header (empty when
    the load did not record it)."""
    nginx_series: dict[str, list[float]] = field(default_factory=dict)
    """1 s buckets from nginx's logs: "t_s", "retried", "error.<kind>" (engine.logseries)."""
    scrapes: list[dict[str, object]] = field(default_factory=list)
    """Prometheus /metrics of every replica during the load:
    {"t_s", "service", "replica", "samples": {"name{label=value,...}": value}}."""
    derived: object = field(default=None, repr=False, compare=False)
    """The lab's own numbers, typed: the frozen dataclass its derive hook returned (None
    for a lab whose derive returns a mapping); `extra` is its JSON view. Read it with
    `numbers(kind)`."""
    raw_requests: list[Request] = field(default_factory=list, repr=False, compare=False)
    """Every request, in memory only (not in results.json): finer buckets on demand."""

    def with_derived(self, numbers: object) -> VariantResult:
        """This result carrying a lab's own numbers (a frozen dataclass) and their JSON view."""
        return replace(self, derived=numbers, extra=asdict(numbers))

    def count(self, status: int | str) -> int:
        return self.status.get(str(status), 0)

    def share(self, status: int | str) -> float:
        return self.count(status) / self.requests if self.requests else 0.0

    def nginx_error_count(self, *kinds: str) -> int:
        return sum(self.nginx_errors.get(kind, 0) for kind in kinds)

    def numbers(self, kind: type[Derived]) -> Derived:
        """The lab's typed numbers; TypeError when this run has none of that kind (a
        check that reads them then fails: it could not be judged)."""
        if not isinstance(self.derived, kind):
            raise TypeError(f"{self.variant} has no {kind.__name__} (derive did not run)")
        return self.derived

    def number(self, key: str) -> float:
        """One of the lab's own numbers (`extra`, from its derive hook); NaN when it is
        missing or not a number, so that a check comparing it fails instead of passing
        on a default."""
        value = self.extra.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return float("nan")
        return float(value)

    def metric(self, key: str) -> float:
        """A summary-table value by key: a field name or `status.<code>`."""
        if key.startswith("status."):
            return self.count(key.split(".", 1)[1])
        if key.startswith("nginx."):
            return self.nginx_errors.get(key.split(".", 1)[1], 0)
        if key.startswith("extra."):
            return self.extra[key.split(".", 1)[1]]
        return getattr(self, key)

    def buckets(self, bucket_s: float = 1.0) -> list[Bucket]:
        """The client's time series in `bucket_s` buckets (0.1 where a lab asks for it)."""
        if bucket_s == 1.0:
            return self.series
        return time_series(self.raw_requests, bucket_s, origin=self.origin_s)

    def to_dict(self) -> dict[str, object]:
        data = asdict(replace(self, raw_requests=[], derived=None))
        del data["raw_requests"], data["derived"]  # `extra` is the derived numbers' JSON view
        return data


def summarize(variant: str, requests: Sequence[Request]) -> VariantResult:
    latencies = [r.response_ms for r in requests]
    if requests:
        first = min(r.start_s for r in requests)
        last = max(r.start_s + r.response_ms / 1000 for r in requests)
        duration = max(last - first, 1e-9)
    else:
        duration = 0.0
    return VariantResult(
        variant=variant,
        duration_s=round(duration, 3),
        requests=len(requests),
        failures=sum(not is_success(r.status) for r in requests),
        status=status_counts(requests),
        p50_ms=round(percentile(latencies, 50), 3),
        p95_ms=round(percentile(latencies, 95), 3),
        p99_ms=round(percentile(latencies, 99), 3),
        mean_ms=round(sum(latencies) / len(latencies), 3) if latencies else 0.0,
        max_ms=round(max(latencies), 3) if latencies else 0.0,
        rps=round(len(requests) / duration, 2) if duration else 0.0,
        series=time_series(requests),
        replicas=replica_counts(requests),
        origin_s=min((r.start_s for r in requests), default=0.0),
        raw_requests=list(requests),
    )
