"""The load balancing lab's numbers (Lab.derive): per phase, per replica, per key.

Phases are cut at the fault events: `healthy` until a replica turns slow, `slow`
until it is killed, `dead` until it is started again, `back` to the end. A request
belongs to the phase it started in. Shares and latencies are the clients' view
(X-Replica on every answer); what nginx tried behind the clients' backs (a
connection to the dead replica refused, then a retry elsewhere) comes from its
access log, where the address a try went to is matched to a replica by the answers
that address gave while it was alive.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from labs.engine.metrics import Request, is_success, percentile
from labs.engine.nginx import AccessEntry, access_entries, parse_time
from labs.engine.spec import DeriveContext

PHASE_OF_ACTION = {"settings": "slow", "kill": "dead", "start": "back"}
FIRST_PHASE = "healthy"


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
) -> dict[str, object]:
    """What the death of `dead` cost, from nginx's and the clients' side:

    - `dead_in_flight`: requests it held when it died (nginx saw the connection close);
    - `dead_tries`: new requests nginx still sent it while it was down, until it answered
      again (with max_fails, the first marks it down and then one probe per fail_timeout;
      without, every turn of the algorithm);
    - `dead_errors`, `last_error_after_s`: the errors the clients got from the death until
      the restart began, and when the last one came (seconds after the death);
    - `back_after_s`: from the start command to the first answer it gave again.
    `end_s` is the epoch end of the run."""
    addrs = {addr for addr, name in replica_of_addr(entries).items() if name == dead}
    died_at = origin_s + died.start_s
    back_at = origin_s + died.end_s
    answered_again = [r.start_s for r in requests if r.replica == dead and r.start_s >= back_at]
    first_answer = min(answered_again, default=math.inf)
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
        "back_after_s": round(first_answer - back_at, 2) if math.isfinite(first_answer) else None,
        "fail_timeout_s": fail_timeout_s,
    }


def key_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query).get("key", [""])[0]


def modulo_moved(keys: Sequence[str], servers: int, removed: int) -> float:
    """Share of `keys` that change server when `removed` leaves a pool hashed with
    crc32(key) % N (nginx's non-consistent `hash`): the survivors renumbered 0..N-2."""
    if not keys:
        return 0.0
    survivors = [i for i in range(servers) if i != removed]
    moved = sum(
        zlib.crc32(k.encode()) % servers != survivors[zlib.crc32(k.encode()) % (servers - 1)]
        for k in keys
    )
    return moved / len(keys)


def key_numbers(
    entries: Sequence[AccessEntry],
    origin_s: float,
    phase_list: Sequence[Phase],
    dead: str,
    servers: int,
) -> dict[str, object]:
    """Key affinity and what moved when `dead` left: per key, the replica that answered
    it while all were up (healthy + slow; requests nginx had to retry elsewhere left out)
    and while one was dead."""
    windows = {"up": ("healthy", "slow"), "dead": ("dead",)}
    seen: dict[str, dict[str, Counter[str]]] = {w: defaultdict(Counter) for w in windows}
    for entry in entries:
        key = key_of(entry.uri)
        if not key or not entry.replica or not is_success(entry.status):
            continue
        t = entry.start_s - origin_s
        for window, names in windows.items():
            # A request retried elsewhere while all were up was in flight on the replica
            # that died: it says where the key went after, not where it lived.
            retried = len(entry.tries) > 1 and window == "up"
            if not retried and any(p.name in names and p.holds(t) for p in phase_list):
                seen[window][key][entry.replica] += 1
    up, down = seen["up"], seen["dead"]
    single = sum(len(replicas) == 1 for replicas in up.values())
    both = sorted(set(up) & set(down))
    home = {k: up[k].most_common(1)[0][0] for k in both}
    moved = [k for k in both if down[k].most_common(1)[0][0] != home[k]]
    of_dead = [k for k in both if home[k] == dead]
    removed = int(dead.rpartition("-")[2]) - 1
    return {
        "keys_up": len(up),
        "keys_single_replica_pct": round(100 * single / len(up), 1) if up else 0.0,
        "keys_compared": len(both),
        "keys_moved": len(moved),
        "keys_moved_pct": round(100 * len(moved) / len(both), 1) if both else 0.0,
        "keys_of_dead": len(of_dead),
        "keys_moved_not_of_dead": sum(home[k] != dead for k in moved),
        "modulo_moved_pct": round(100 * modulo_moved(both, servers, removed), 1),
    }


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
        end = origin + result.duration_s
        extra.update(
            dead_replica_numbers(entries, origin, victim, died, fail_timeout, ctx.requests, end)
        )
        if variant.nginx.upstream.balance.startswith("hash"):
            extra.update(key_numbers(entries, origin, phase_list, victim, backend.replicas))
    return extra
