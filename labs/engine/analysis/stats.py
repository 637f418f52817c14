"""Typed reads of what the services counted: each replica's `/admin/stats` at the end of
the load (`VariantResult.services`) and the periodic samples.

The stats are JSON; these readers give a lab numbers and mappings without isinstance
checks or type-checker escapes, and a missing value reads as NaN / empty so a check that
needs it fails instead of passing on a default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from labs.engine.analysis.metrics import VariantResult

NAN = float("nan")


def mapping(value: object) -> Mapping[str, object]:
    """`value` if it is a JSON object, else {}."""
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> Sequence[object]:
    """`value` if it is a JSON array, else ()."""
    return value if isinstance(value, list | tuple) else ()


def number(value: object, default: float = NAN) -> float:
    """A JSON number (or numeric string) as a float; `default` for anything else."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default


def whole(value: object, default: int = 0) -> int:
    """A JSON number as an int; `default` for anything else."""
    n = number(value)
    return int(n) if n == n else default


def service_stats(result: VariantResult, service: str, replica: int = 0) -> Mapping[str, object]:
    """One replica's /admin/stats at the end of the load ({}: not collected)."""
    replicas = result.services.get(service) or []
    return mapping(replicas[replica]) if replica < len(replicas) else {}


def every_replica(result: VariantResult, service: str) -> tuple[Mapping[str, object], ...]:
    """Every replica's /admin/stats at the end of the load, in replica order."""
    return tuple(mapping(r) for r in result.services.get(service) or [])


def downstream(result: VariantResult, name: str, service: str = "gateway") -> Mapping[str, object]:
    """The gateway's stats for one downstream ({}: none)."""
    return mapping(mapping(service_stats(result, service).get("downstreams")).get(name))


def total(result: VariantResult, service: str, key: str) -> int:
    """A counter summed over every replica of `service`."""
    return sum(whole(r.get(key)) for r in every_replica(result, service))


def bucket_counts(counter: object, origin_s: float) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """A per-bucket counter a service reports on the wall-clock grid ({"bucket_s",
    "start_epoch_s", "counts"}, services/api/arrivals.py) as (each bucket's start in
    seconds since `origin_s`, its count); ((), ()) when there is none."""
    snapshot = mapping(counter)
    start, width = number(snapshot.get("start_epoch_s")), number(snapshot.get("bucket_s"))
    if start != start or not width > 0:
        return (), ()
    counts = tuple(whole(c) for c in items(snapshot.get("counts")))
    return tuple(round(start - origin_s + i * width, 3) for i in range(len(counts))), counts
