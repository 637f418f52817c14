"""Where the hash variants' keys live (load-balancing's measure.py): which replica answered
each key while all were up, and which keys moved when a replica died or was taken out of
nginx's upstream, from nginx's access log."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from labs.engine.analysis.metrics import is_success
from labs.engine.analysis.windows import Window
from labs.engine.topology.nginx import AccessEntry
from labs.load_balancing.scenario import RELOAD_SETTLE_S


@dataclass(frozen=True)
class MovedKeys:
    """Keys seen before and after a replica left, and where they went."""

    compared: int
    moved: int
    moved_pct: float
    of_it: int
    """Keys whose home was the replica that left."""
    moved_not_of_it: int
    """Keys that moved from a replica that stayed."""


@dataclass(frozen=True)
class KeyNumbers:
    keys_up: int
    """Keys answered while every replica was up."""
    keys_single_replica_pct: float
    """Of those, the share answered by one replica only."""
    died: MovedKeys | None
    """When the replica died (marked down by nginx, still in its upstream)."""
    removed: MovedKeys | None
    """When it was taken out of the upstream: the `removed` phase from nginx's reload
    (the end of the remove action) plus RELOAD_SETTLE_S."""


def key_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query).get("key", [""])[0]


Span = tuple[float, float]
"""[start, end) in epoch seconds."""


def key_replicas(
    entries: Sequence[AccessEntry], spans: Sequence[Span], *, retried: bool
) -> dict[str, Counter[str]]:
    """Per key, how often each replica answered it in requests started within `spans`.
    `retried=False` leaves out requests nginx tried on more than one replica: while all
    were up, such a request was in flight on the one that died, and says where its key
    went after, not where it lived."""
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        key = key_of(entry.uri)
        if not key or not entry.replica or not is_success(entry.status):
            continue
        if not retried and len(entry.tries) > 1:
            continue
        if any(start <= entry.start_s < end for start, end in spans):
            seen[key][entry.replica] += 1
    return seen


def moved_keys(
    before: Mapping[str, Counter[str]], after: Mapping[str, Counter[str]], left: str
) -> MovedKeys:
    """Keys seen in both windows whose replica (the one that answered most of their
    requests) changed when `left` left."""
    both = sorted(set(before) & set(after))
    home = {k: before[k].most_common(1)[0][0] for k in both}
    moved = [k for k in both if after[k].most_common(1)[0][0] != home[k]]
    return MovedKeys(
        compared=len(both),
        moved=len(moved),
        moved_pct=round(100 * len(moved) / len(both), 1) if both else 0.0,
        of_it=sum(home[k] == left for k in both),
        moved_not_of_it=sum(home[k] != left for k in moved),
    )


def key_numbers(
    entries: Sequence[AccessEntry],
    origin_s: float,
    phase_list: Sequence[Window],
    replica: str,
    back_s: float,
    reload_after_s: float = 0.0,
) -> KeyNumbers:
    """Key affinity while all replicas were up, and what moved when `replica` left.
    "All up": the healthy and slow phases, and the back phase from `back_s` on (epoch:
    when its first answer after the restart came back). "After": from the reload, which
    came `reload_after_s` into the `removed` phase (the remove action tests the new
    config first, through `docker exec` on compose: seconds there)."""
    spans = {p.name: (origin_s + p.start_s, origin_s + p.end_s) for p in phase_list}
    up = [spans[name] for name in ("healthy", "slow") if name in spans]
    if "back" in spans and back_s < spans["back"][1]:
        up.append((back_s, spans["back"][1]))
    before = key_replicas(entries, up, retried=False)
    single = sum(len(replicas) == 1 for replicas in before.values())
    died = removed = None
    if "dead" in spans:
        died = moved_keys(before, key_replicas(entries, [spans["dead"]], retried=True), replica)
    if "removed" in spans:
        start, end = spans["removed"]
        settled = start + reload_after_s + RELOAD_SETTLE_S
        after = key_replicas(entries, [(settled, end)], retried=False)
        removed = moved_keys(before, after, replica)
    return KeyNumbers(
        keys_up=len(before),
        keys_single_replica_pct=round(100 * single / len(before), 1) if before else 0.0,
        died=died,
        removed=removed,
    )
