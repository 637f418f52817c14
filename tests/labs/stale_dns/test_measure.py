"""stale-dns's measurements (labs/stale_dns/measure.py) on synthetic runs."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace

import pytest

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.spec import DeriveContext
from labs.stale_dns.measure import StaleDnsNumbers, derive, numbers
from labs.stale_dns.scenario import MIN_REQUESTS, RESOLVE_ONCE, SETTLE_S

T0 = 1_000_000.0
MOVE = {"what": "fault", "action": "move", "t_s": 5.0, "took_s": 0.5, "service": "api"}


def run(statuses: list[tuple[float, int]], *events: dict[str, object]) -> VariantResult:
    """A run whose requests start at T0 + t with these statuses (t = 0 is the first)."""
    requests = [Request(T0 + t, "/work", status, 5.0) for t, status in statuses]
    return replace(summarize("v", requests), events=list(events))


def every(step_s: float, start_s: float, end_s: float, status: int) -> list[tuple[float, int]]:
    count = round((end_s - start_s) / step_s)
    return [(start_s + i * step_s, status) for i in range(count)]


def test_resolve_once_fails_every_request_from_the_move_on():
    result = run([*every(0.01, 0, 5, 200), *every(0.01, 5, 5.5, 200), *every(0.01, 5.5, 14, 502)],
                 MOVE)  # fmt: skip
    n = numbers(result, result.raw_requests)
    assert (n.move_s, n.moved_s, math.isnan(n.reload_s)) == (5.0, 5.5, True)
    assert (n.before_requests, n.before_failed) == (500, 0)
    assert (n.after_requests, n.after_failed, n.after_failed_pct) == (850, 850, 100.0)
    assert (
        n.settled_requests == 850 - round(SETTLE_S / 0.01)
        and n.settled_failed == n.settled_requests
    )
    assert n.last_failure_s == pytest.approx(8.49)
    assert n.stale() and not n.followed()


def test_a_resolver_fails_only_while_its_answer_is_stale():
    statuses = [*every(0.01, 0, 6, 200), *every(0.01, 6, 7.2, 502), *every(0.01, 7.2, 14, 200)]
    n = numbers(run(statuses, MOVE), run(statuses, MOVE).raw_requests)
    assert n.last_failure_s == pytest.approx(1.69)
    assert n.settled_failed == 0 and n.settled_requests >= MIN_REQUESTS
    assert n.followed() and not n.stale()
    late = [*statuses[:-10], (5.5 + SETTLE_S + 0.1, 502)]
    assert not numbers(run(late, MOVE), run(late, MOVE).raw_requests).followed()


def test_a_failure_before_the_move_or_too_few_requests_is_not_stale_dns():
    statuses = [(1.0, 502), *every(0.01, 2, 5, 200), *every(0.01, 5.5, 14, 502)]
    assert not numbers(run(statuses, MOVE), run(statuses, MOVE).raw_requests).stale()
    few = [*every(0.01, 0, 5, 200), *every(0.1, 5.5, 14, 502)]
    n = numbers(run(few, MOVE), run(few, MOVE).raw_requests)
    assert n.after_requests < MIN_REQUESTS and not n.stale()


def test_a_run_without_a_move_counts_everything_before_and_proves_nothing():
    result = run(every(0.01, 0, 14, 200))
    n = numbers(result, result.raw_requests)
    assert math.isnan(n.move_s) and math.isnan(n.moved_s) and math.isnan(n.last_failure_s)
    assert (n.before_requests, n.after_requests, n.settled_requests) == (1400, 0, 0)
    assert not n.stale() and not n.followed()


def test_derive_reads_the_reload_and_returns_frozen_numbers(tmp_path):
    reload = {"what": "fault", "action": "reload", "t_s": 5.5, "took_s": 0.0, "service": "nginx"}
    result = run(every(0.01, 0, 14, 200), MOVE, reload)
    n = derive(DeriveContext(RESOLVE_ONCE, result, result.raw_requests, tmp_path))
    assert isinstance(n, StaleDnsNumbers) and n.reload_s == 5.5
    assert str(n.after) == "0 of 850 failed (0.0 %)"
    with pytest.raises(FrozenInstanceError):
        setattr(n, "move_s", 1.0)  # noqa: B010
