"""The load balancing lab's numbers (Lab.derive): per phase, per replica, per key.

Phases are cut at the fault events: `healthy` until a replica turns slow, `slow`
until it is killed, `dead` until it is started again, `back` until the end or, for the
hash variants, until it is taken out of nginx's upstream, then `removed` (a scale-in).
A request belongs to the phase it started in. Shares and latencies are the clients' view
(X-Replica on every answer); what nginx tried behind the clients' backs (a
connection to the dead replica refused, then a retry elsewhere) comes from its
access log, where the address a try went to is matched to a replica by the answers
that address gave while it was alive.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from labs.engine.analysis.metrics import Request, is_success, percentile
from labs.engine.model.spec import DeriveContext
from labs.engine.topology.nginx import AccessEntry, access_entries, parse_time

PHASE_OF_ACTION = {"settings": "slow", "kill": "dead", "start": "back", "remove": "removed"}
FIRST_PHASE = "healthy"
RELOAD_SETTLE_S = 1.0
"""Requests that start this soon after nginx's reload are left out of where keys went:
the old worker still answers the requests it holds, by the old upstream."""


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float
    """Seconds since the first request (the run's t = 0)."""
    end_s: float

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


def phases(events: Sequence[Mapping[str, object]], end_s: float) -> list[Phase]:
    """The run cut at each fault event; a phase is named by the action that began it."""
    cuts = [(FIRST_PHASE, 0.0)]
    for event in events:
        cuts.append((PHASE_OF_ACTION.get(str(event.get("action")), "?"), float(event["t_s"])))  # type: ignore[arg-type]
    ends = [t for _, t in cuts[1:]] + [max(end_s, cuts[-1][1])]
    return [Phase(name, start, end) for (name, start), end in zip(cuts, ends, strict=True)]


def phase_numbers(requests: Sequence[Request], replicas: Sequence[str]) -> dict[str, object]:
    """Requests, each replica's share of the answers, latency and errors of one phase."""
    latencies = [r.response_ms for r in requests]
    answered = Counter(r.replica for r in requests if r.replica)
    total = sum(answered.values())
    return {
        "requests": len(requests),
        "share": {name: round(answered[name] / total, 4) if total else 0.0 for name in replicas},
        "mean_ms": round(sum(latencies) / len(latencies), 1) if latencies else 0.0,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "errors": sum(not is_success(r.status) for r in requests),
        "502": sum(r.status == 502 for r in requests),
        "504": sum(r.status == 504 for r in requests),
    }


def replica_names(requests: Sequence[Request], count: int) -> list[str]:
    """Every replica that answered, in order; replicas that never answered are still
    listed (api-1 .. api-N), so a starved replica shows as a 0 share."""
    seen = {r.replica for r in requests if r.replica}
    service = sorted(seen)[0].rpartition("-")[0] if seen else "api"
    named = {f"{service}-{i + 1}" for i in range(count)} | seen
    return sorted(named, key=lambda n: (len(n), n))


def per_second(
    requests: Sequence[Request], origin_s: float, replicas: Sequence[str]
) -> dict[str, list[int]]:
    """Answers per replica in 1 s buckets by start time."""
    seconds = max((int(r.start_s - origin_s) for r in requests), default=-1) + 1
    counts = {name: [0] * seconds for name in replicas}
    for r in requests:
        if r.replica in counts and r.start_s >= origin_s:
            counts[r.replica][int(r.start_s - origin_s)] += 1
    return counts


def replica_of_addr(entries: Sequence[AccessEntry]) -> dict[str, str]:
    """host:port -> replica name, from the requests a single try answered."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        if entry.replica and entry.tries and entry.tries[-1].succeeded:
            votes[entry.tries[-1].addr][entry.replica] += 1
    return {addr: counter.most_common(1)[0][0] for addr, counter in votes.items()}


def dead_replica_numbers(
    entries: Sequence[AccessEntry],
    origin_s: float,
    dead: str,
    died: Phase,
    fail_timeout_s: float,
    requests: Sequence[Request],
    end_s: float,
    ready_after_s: float | None = None,
) -> dict[str, object]:
    """What the death of `dead` cost, from nginx's and the clients' side:

    - `dead_in_flight`: requests it held when it died (nginx saw the connection close);
    - `dead_tries`: new requests nginx still sent it while it was down, until it answered
      again (with max_fails, the first marks it down and then one probe per fail_timeout;
      without, every turn of the algorithm);
    - `dead_errors`, `last_error_after_s`: the errors the clients got from the death until
      the restart began, and when the last one came (seconds after the death);
    - `back_after_s`: from the start command to the first answer it gave again;
    - `ready_after_s` (given: how long the start command took, until the replica answered
      its /readyz) and `rejoined_after_s`: from then to its first answer through nginx.
    `end_s` is the epoch end of the run."""
    addrs = {addr for addr, name in replica_of_addr(entries).items() if name == dead}
    died_at = origin_s + died.start_s
    back_at = origin_s + died.end_s
    first_answer = first_answer_after(requests, dead, back_at)
    in_flight = tries = 0
    try_times: list[float] = []
    for entry in entries:
        on_dead = [t for t in entry.tries if t.addr in addrs and not t.succeeded]
        if not on_dead:
            continue
        if entry.start_s < died_at:
            in_flight += len(on_dead)
        elif entry.start_s < first_answer:
            tries += len(on_dead)
            try_times.append(entry.start_s - died_at)
    errors = [  # when each client saw its error: those in flight at the death count too
        r.start_s + r.response_ms / 1000 - died_at
        for r in requests
        if r.start_s < back_at
        and r.start_s + r.response_ms / 1000 >= died_at
        and not is_success(r.status)
    ]
    down_s = min(first_answer, end_s) - died_at
    back = first_answer - back_at if math.isfinite(first_answer) else None
    rejoined = None if back is None or ready_after_s is None else back - ready_after_s
    allowed = 1 + math.ceil(down_s / fail_timeout_s) if fail_timeout_s > 0 else None
    return {
        "dead_replica": dead,
        "dead_in_flight": in_flight,
        "dead_tries": tries,
        "dead_try_times_s": [round(t, 2) for t in try_times[:50]],
        "dead_tries_allowed": allowed,
        "dead_errors": len(errors),
        "last_error_after_s": round(max(errors), 2) if errors else None,
        "dead_phase_s": round(died.end_s - died.start_s, 2),
        "back_after_s": None if back is None else round(back, 2),
        "ready_after_s": ready_after_s,
        "rejoined_after_s": None if rejoined is None else round(rejoined, 2),
        "fail_timeout_s": fail_timeout_s,
    }


def first_answer_after(requests: Sequence[Request], replica: str, t: float) -> float:
    """When `replica` first answered a request started at or after epoch `t` (inf: never)."""
    answers = (r.start_s for r in requests if r.replica == replica and r.start_s >= t)
    return min(answers, default=math.inf)


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
) -> dict[str, object]:
    """Keys seen in both windows whose replica (the one that answered most of their
    requests) changed when `left` left."""
    both = sorted(set(before) & set(after))
    home = {k: before[k].most_common(1)[0][0] for k in both}
    moved = [k for k in both if after[k].most_common(1)[0][0] != home[k]]
    return {
        "compared": len(both),
        "moved": len(moved),
        "moved_pct": round(100 * len(moved) / len(both), 1) if both else 0.0,
        "of_it": sum(home[k] == left for k in both),
        "moved_not_of_it": sum(home[k] != left for k in moved),
    }


def key_numbers(
    entries: Sequence[AccessEntry],
    origin_s: float,
    phase_list: Sequence[Phase],
    replica: str,
    back_s: float,
) -> dict[str, object]:
    """Key affinity while all replicas were up, and what moved when `replica` left:
    `died_keys_*` when it died (marked down by nginx, still in its upstream) and
    `removed_keys_*` when it was taken out of the upstream (the `removed` phase, less
    RELOAD_SETTLE_S). "All up": the healthy and slow phases, and the back phase from
    `back_s` on (epoch: when its first answer after the restart came back)."""
    spans = {p.name: (origin_s + p.start_s, origin_s + p.end_s) for p in phase_list}
    up = [spans[name] for name in ("healthy", "slow") if name in spans]
    if "back" in spans and back_s < spans["back"][1]:
        up.append((back_s, spans["back"][1]))
    before = key_replicas(entries, up, retried=False)
    single = sum(len(replicas) == 1 for replicas in before.values())
    numbers: dict[str, object] = {
        "keys_up": len(before),
        "keys_single_replica_pct": round(100 * single / len(before), 1) if before else 0.0,
    }
    if "dead" in spans:
        died = key_replicas(entries, [spans["dead"]], retried=True)
        numbers.update({f"died_keys_{k}": v for k, v in moved_keys(before, died, replica).items()})
    if "removed" in spans:
        start, end = spans["removed"]
        removed = key_replicas(entries, [(start + RELOAD_SETTLE_S, end)], retried=False)
        moved = moved_keys(before, removed, replica)
        numbers.update({f"removed_keys_{k}": v for k, v in moved.items()})
    return numbers


def derive(ctx: DeriveContext) -> Mapping[str, object]:
    result, variant = ctx.result, ctx.variant
    backend = next(s for s in variant.services if s.name == variant.nginx.backend)
    names = replica_names(ctx.requests, backend.replicas)
    phase_list = phases(result.events, result.duration_s)
    origin = result.origin_s
    by_phase = {
        p.name: phase_numbers([r for r in ctx.requests if p.holds(r.start_s - origin)], names)
        for p in phase_list
    }
    extra: dict[str, object] = {
        "replicas": names,
        "phases": [
            {"name": p.name, "start_s": round(p.start_s, 2), "end_s": round(p.end_s, 2)}
            for p in phase_list
        ],
        "by_phase": by_phase,
        "per_second": per_second(ctx.requests, origin, names),
    }
    faulted = [e for e in result.events if e.get("replica") is not None]
    if not faulted:
        return extra
    victim = backend.replica_name(int(faulted[0]["replica"]))  # type: ignore[arg-type]
    extra["slow_replica"] = victim
    slow = by_phase.get("slow", {})
    if slow:
        extra["slow_share_pct"] = round(100 * slow["share"].get(victim, 0.0), 1)  # type: ignore[index, union-attr]
        extra["slow_mean_ms"] = slow["mean_ms"]
        extra["slow_p90_ms"] = slow["p90_ms"]
    log = ctx.out_dir / "nginx" / "access.log"
    entries = access_entries(log.read_text(errors="replace")) if log.exists() else []
    died = next((p for p in phase_list if p.name == "dead"), None)
    if died is not None:
        fail_timeout = parse_time(variant.nginx.upstream.fail_timeout)
        end, end_dead = origin + result.duration_s, origin + died.end_s
        start = next((e for e in result.events if e.get("action") == "start"), {})
        took = start.get("took_s")
        ready = float(took) if isinstance(took, int | float) else None
        extra.update(
            dead_replica_numbers(
                entries, origin, victim, died, fail_timeout, ctx.requests, end, ready
            )
        )
        if variant.nginx.upstream.balance.startswith("hash"):
            # nginx counts it up again when its first answer (a probe) has come back:
            # requests started while that probe was in flight still went elsewhere
            again = [r for r in ctx.requests if r.replica == victim and r.start_s >= end_dead]
            back = min((r.start_s + r.response_ms / 1000 for r in again), default=math.inf)
            extra.update(key_numbers(entries, origin, phase_list, victim, back))
    return extra
