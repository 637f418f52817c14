"""load-balancing's numbers (Lab.derive): per phase, per replica, per key.

Phases are cut at the fault events (labs/engine/analysis/windows.py): `healthy` until a
replica turns slow, `slow` until it is killed, `dead` until it is started again, `back`
until the end or, for the hash variants, until it is taken out of nginx's upstream, then
`removed` (a scale-in). A request belongs to the phase it started in. Shares and latencies
are the clients' view (X-Replica on every answer); what nginx tried behind the clients'
backs (a connection to the dead replica refused, then a retry elsewhere) comes from its
access log, where the address a try went to is matched to a replica by the answers that
address gave while it was alive. Where the hash variants' keys went is in keys.py.

`derive` returns them typed, as `LoadBalancingNumbers`; the runner keeps it in
`VariantResult.derived` (read it with `result.numbers(LoadBalancingNumbers)`) and its
asdict() view in results.json's `extra`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from labs.engine.analysis.metrics import Request, is_success, percentile
from labs.engine.analysis.windows import Window, fault_events, fault_took_s, phases
from labs.engine.model.spec import DeriveContext
from labs.engine.topology.nginx import AccessEntry, access_entries, parse_time
from labs.load_balancing.keys import KeyNumbers, key_numbers
from labs.load_balancing.scenario import FIRST_PHASE, PHASE_OF_ACTION

NAN = float("nan")


@dataclass(frozen=True)
class PhaseNumbers:
    """The requests that started in one phase."""

    requests: int
    share: Mapping[str, float]
    """Each replica's share of the answers, 0..1."""
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    count_502: int
    count_504: int


@dataclass(frozen=True)
class DeadReplica:
    """What the death of a replica cost, from nginx's and the clients' side (field names
    as in `LoadBalancingNumbers`)."""

    dead_replica: str
    dead_in_flight: int
    """Requests it held when it died (nginx saw the connection close)."""
    dead_tries: int
    """New requests nginx still sent it while it was down, until it answered again (with
    max_fails, the first marks it down and then one probe per fail_timeout; without,
    every turn of the algorithm)."""
    dead_try_times_s: tuple[float, ...]
    """When those tries started, seconds after the death (the first 50)."""
    dead_tries_allowed: int | None
    """One try, then one probe per fail_timeout while it was down (None: no fail_timeout)."""
    dead_errors: int
    """Errors the clients got from the death until the restart began."""
    last_error_after_s: float | None
    dead_phase_s: float
    back_after_s: float | None
    """From the start command to the first answer it gave again (None: never)."""
    ready_after_s: float | None
    """How long the start command took: until the replica answered its /readyz."""
    rejoined_after_s: float | None
    """From its readiness to its first answer through nginx."""
    fail_timeout_s: float


@dataclass(frozen=True)
class LoadBalancingNumbers:
    """One variant's numbers (field order = results.json's `extra`). The key numbers
    (`keys_*`, `died_keys_*`, `removed_keys_*`) are measured for the hash variants only
    (None otherwise)."""

    replicas: tuple[str, ...]
    phases: tuple[Window, ...]
    by_phase: Mapping[str, PhaseNumbers]
    per_second: Mapping[str, tuple[int, ...]]
    """Answers per replica in 1 s buckets by start time."""
    slow_replica: str
    slow_share_pct: float
    slow_mean_ms: float
    slow_p90_ms: float
    dead_replica: str
    dead_in_flight: int
    dead_tries: int
    dead_try_times_s: tuple[float, ...]
    dead_tries_allowed: int | None
    dead_errors: int
    last_error_after_s: float | None
    dead_phase_s: float
    back_after_s: float | None
    ready_after_s: float | None
    rejoined_after_s: float | None
    fail_timeout_s: float
    keys_up: int | None = None
    keys_single_replica_pct: float | None = None
    died_keys_compared: int | None = None
    died_keys_moved: int | None = None
    died_keys_moved_pct: float | None = None
    died_keys_of_it: int | None = None
    died_keys_moved_not_of_it: int | None = None
    removed_keys_compared: int | None = None
    removed_keys_moved: int | None = None
    removed_keys_moved_pct: float | None = None
    removed_keys_of_it: int | None = None
    removed_keys_moved_not_of_it: int | None = None

    def phase(self, name: str) -> PhaseNumbers | None:
        return self.by_phase.get(name)

    def slow_requests(self) -> int:
        slow = self.phase("slow")
        return slow.requests if slow else 0

    def fails_over(self, errors_within_s: float, rejoins_within_s: float) -> bool:
        """The clients' errors stopped within `errors_within_s` of the death, nginx sent
        the dead replica no more than one probe per fail_timeout, and once ready after
        its restart it answered through nginx within `rejoins_within_s`."""
        last, rejoined = self.last_error_after_s, self.rejoined_after_s
        allowed = self.dead_tries_allowed
        return (
            (last is None or last <= errors_within_s)
            and allowed is not None
            and self.dead_tries <= allowed
            and rejoined is not None
            and rejoined <= rejoins_within_s
        )

    def removed_moved_pct(self) -> float:
        """The share of the keys that moved at the scale-in (NaN: not measured)."""
        pct = self.removed_keys_moved_pct
        return NAN if pct is None else pct


def phase_numbers(requests: Sequence[Request], replicas: Sequence[str]) -> PhaseNumbers:
    """Requests, each replica's share of the answers, latency and errors of one phase."""
    latencies = [r.response_ms for r in requests]
    answered = Counter(r.replica for r in requests if r.replica)
    total = sum(answered.values())
    return PhaseNumbers(
        requests=len(requests),
        share={name: round(answered[name] / total, 4) if total else 0.0 for name in replicas},
        mean_ms=round(sum(latencies) / len(latencies), 1) if latencies else 0.0,
        p50_ms=round(percentile(latencies, 50), 1),
        p90_ms=round(percentile(latencies, 90), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        errors=sum(not is_success(r.status) for r in requests),
        count_502=sum(r.status == 502 for r in requests),
        count_504=sum(r.status == 504 for r in requests),
    )


def replica_names(requests: Sequence[Request], count: int) -> tuple[str, ...]:
    """Every replica that answered, in order; replicas that never answered are still
    listed (api-1 .. api-N), so a starved replica shows as a 0 share."""
    seen = {r.replica for r in requests if r.replica}
    service = sorted(seen)[0].rpartition("-")[0] if seen else "api"
    named = {f"{service}-{i + 1}" for i in range(count)} | seen
    return tuple(sorted(named, key=lambda n: (len(n), n)))


def per_second(
    requests: Sequence[Request], origin_s: float, replicas: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """Answers per replica in 1 s buckets by start time."""
    seconds = max((int(r.start_s - origin_s) for r in requests), default=-1) + 1
    counts = {name: [0] * seconds for name in replicas}
    for r in requests:
        if r.replica in counts and r.start_s >= origin_s:
            counts[r.replica][int(r.start_s - origin_s)] += 1
    return {name: tuple(ys) for name, ys in counts.items()}


def replica_of_addr(entries: Sequence[AccessEntry]) -> dict[str, str]:
    """host:port -> replica name, from the requests a single try answered."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        if entry.replica and entry.tries and entry.tries[-1].succeeded:
            votes[entry.tries[-1].addr][entry.replica] += 1
    return {addr: counter.most_common(1)[0][0] for addr, counter in votes.items()}


def first_answer_after(requests: Sequence[Request], replica: str, t: float) -> float:
    """When `replica` first answered a request started at or after epoch `t` (inf: never)."""
    answers = (r.start_s for r in requests if r.replica == replica and r.start_s >= t)
    return min(answers, default=math.inf)


def dead_replica_numbers(
    entries: Sequence[AccessEntry],
    origin_s: float,
    dead: str,
    died: Window,
    fail_timeout_s: float,
    requests: Sequence[Request],
    end_s: float,
    ready_after_s: float | None = None,
) -> DeadReplica:
    """What the death of `dead` (in the `died` phase) cost; `end_s` is the epoch end of
    the run, `ready_after_s` how long its start command took."""
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
    return DeadReplica(
        dead_replica=dead,
        dead_in_flight=in_flight,
        dead_tries=tries,
        dead_try_times_s=tuple(round(t, 2) for t in try_times[:50]),
        dead_tries_allowed=1 + math.ceil(down_s / fail_timeout_s) if fail_timeout_s > 0 else None,
        dead_errors=len(errors),
        last_error_after_s=round(max(errors), 2) if errors else None,
        dead_phase_s=round(died.duration_s, 2),
        back_after_s=None if back is None else round(back, 2),
        ready_after_s=ready_after_s,
        rejoined_after_s=None if rejoined is None else round(rejoined, 2),
        fail_timeout_s=fail_timeout_s,
    )


def with_keys(numbers: LoadBalancingNumbers, keys: KeyNumbers) -> LoadBalancingNumbers:
    """`numbers` with the key numbers filled in, flat as results.json has them."""
    died, removed = keys.died, keys.removed
    numbers = replace(
        numbers, keys_up=keys.keys_up, keys_single_replica_pct=keys.keys_single_replica_pct
    )
    if died is not None:
        numbers = replace(
            numbers,
            died_keys_compared=died.compared,
            died_keys_moved=died.moved,
            died_keys_moved_pct=died.moved_pct,
            died_keys_of_it=died.of_it,
            died_keys_moved_not_of_it=died.moved_not_of_it,
        )
    if removed is not None:
        numbers = replace(
            numbers,
            removed_keys_compared=removed.compared,
            removed_keys_moved=removed.moved,
            removed_keys_moved_pct=removed.moved_pct,
            removed_keys_of_it=removed.of_it,
            removed_keys_moved_not_of_it=removed.moved_not_of_it,
        )
    return numbers


def derive(ctx: DeriveContext) -> LoadBalancingNumbers:
    result, variant, requests = ctx.result, ctx.variant, ctx.requests
    backend = next(s for s in variant.services if s.name == variant.nginx.backend)
    names = replica_names(requests, backend.replicas)
    windows = phases(result, PHASE_OF_ACTION, FIRST_PHASE)
    origin, end = result.origin_s, result.origin_s + result.duration_s
    by_phase = {
        w.name: phase_numbers([r for r in requests if w.holds(r.start_s - origin)], names)
        for w in windows
    }
    replica = next((e.replica for e in fault_events(result) if e.replica is not None), None)
    victim = "" if replica is None else backend.replica_name(replica)
    slow = by_phase.get("slow") if victim else None
    fail_timeout = parse_time(variant.nginx.upstream.fail_timeout)
    log = ctx.out_dir / "nginx" / "access.log"
    entries = access_entries(log.read_text(errors="replace")) if log.exists() else []
    died = next((w for w in windows if w.name == "dead"), None) if victim else None
    if died is None:
        dead = DeadReplica("", 0, 0, (), None, 0, None, 0.0, None, None, None, fail_timeout)
    else:
        took = fault_took_s(result, "start")
        ready = None if math.isnan(took) else took
        dead = dead_replica_numbers(
            entries, origin, victim, died, fail_timeout, requests, end, ready
        )
    numbers = LoadBalancingNumbers(
        replicas=names,
        phases=tuple(Window(round(w.start_s, 2), round(w.end_s, 2), w.name) for w in windows),
        by_phase=by_phase,
        per_second=per_second(requests, origin, names),
        slow_replica=victim,
        slow_share_pct=round(100 * slow.share.get(victim, 0.0), 1) if slow else NAN,
        slow_mean_ms=slow.mean_ms if slow else NAN,
        slow_p90_ms=slow.p90_ms if slow else NAN,
        dead_replica=dead.dead_replica,
        dead_in_flight=dead.dead_in_flight,
        dead_tries=dead.dead_tries,
        dead_try_times_s=dead.dead_try_times_s,
        dead_tries_allowed=dead.dead_tries_allowed,
        dead_errors=dead.dead_errors,
        last_error_after_s=dead.last_error_after_s,
        dead_phase_s=dead.dead_phase_s,
        back_after_s=dead.back_after_s,
        ready_after_s=dead.ready_after_s,
        rejoined_after_s=dead.rejoined_after_s,
        fail_timeout_s=dead.fail_timeout_s,
    )
    if died is None or not variant.nginx.upstream.balance.startswith("hash"):
        return numbers
    # nginx counts it up again when its first answer (a probe) has come back: requests
    # started while that probe was in flight still went elsewhere
    back_at = origin + died.end_s
    again = [r for r in requests if r.replica == victim and r.start_s >= back_at]
    back = min((r.start_s + r.response_ms / 1000 for r in again), default=math.inf)
    reload_after = fault_took_s(result, "remove")
    reload_after = 0.0 if math.isnan(reload_after) else reload_after
    return with_keys(numbers, key_numbers(entries, origin, windows, victim, back, reload_after))
