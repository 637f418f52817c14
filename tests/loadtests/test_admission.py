"""The open-loop client's decisions (loadtests/admission.py): Poisson arrivals, the gRPC
retry budget, SRE adaptive throttling (no Locust, no sleeping)."""

from __future__ import annotations

import statistics

import pytest

from loadtests.admission import AdaptiveThrottle, Arrivals, RetryBudget


def test_arrivals_are_a_seeded_poisson_process_at_the_rate():
    arrivals = Arrivals(50, start=100.0, seed=1)
    times = [arrivals.next() for _ in range(5000)]
    gaps = [b - a for a, b in zip([100.0, *times], times, strict=False)]
    assert all(g > 0 for g in gaps)
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50, rel=0.1)  # exponential: sd = mean
    again = Arrivals(50, start=100.0, seed=1)
    assert [again.next() for _ in range(3)] == times[:3]
    with pytest.raises(ValueError):
        Arrivals(0, start=0.0)


def test_the_retry_budget_stops_retries_after_five_failures_and_refills_slowly():
    budget = RetryBudget()
    allowed = []
    for _ in range(8):
        budget.record(success=False)
        allowed.append(budget.allows_retry())
    assert allowed == [True] * 4 + [False] * 4  # 10 tokens: retries while more than 5 left
    assert budget.tokens == 2 and budget.refused == 4
    for _ in range(30):
        budget.record(success=True)
    assert budget.tokens == pytest.approx(5.0) and not budget.allows_retry()
    budget.record(success=True)
    assert budget.allows_retry()
    for _ in range(100):
        budget.record(success=True)
    assert budget.tokens == 10  # never more than the bucket


def test_throttling_admits_everything_while_the_backend_accepts():
    throttle = AdaptiveThrottle(k=2, window_s=2, seed=1)
    for step in range(200):
        now = step * 0.01
        assert throttle.admit(now)
        throttle.accepted(now)
    assert throttle.reject_probability(2.0) == 0 and throttle.rejected == 0


def test_throttling_sends_about_k_times_the_accepts_when_the_backend_refuses():
    throttle = AdaptiveThrottle(k=2, window_s=2, seed=1)
    sent = accepted = 0
    for step in range(2000):  # 20 s at 100 requests/s; the backend accepts 1 in 10 sent
        now = step * 0.01
        if throttle.admit(now):
            sent += 1
            if sent % 10 == 0:
                accepted += 1
                throttle.accepted(now)
    assert throttle.reject_probability(20.0) > 0.5
    assert throttle.rejected == 2000 - sent
    # Requests reaching the backend stay near the accepts' K x: far below the 2000 asked.
    assert sent < 300


def test_the_window_forgets_old_requests():
    throttle = AdaptiveThrottle(k=2, window_s=1, seed=1)
    for step in range(100):
        throttle.admit(step * 0.01)  # none accepted
    assert throttle.reject_probability(0.99) > 0.9
    assert throttle.reject_probability(2.0) == 0  # all outside the window
    with pytest.raises(ValueError):
        AdaptiveThrottle(k=0.5)
