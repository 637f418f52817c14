"""The api's per-100 ms arrival counts."""

from __future__ import annotations

from services.api.arrivals import Arrivals


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_counts_per_bucket_on_the_wall_clock_grid():
    clock = Clock(1000.05)
    arrivals = Arrivals(clock)
    assert arrivals.snapshot() == {"bucket_s": 0.1, "start_epoch_s": None, "counts": [], "total": 0}
    for t in (1000.05, 1000.06, 1000.15, 1000.45, 1000.45):
        clock.t = t
        arrivals.record()
    snap = arrivals.snapshot()
    assert snap["start_epoch_s"] == 1000.0
    assert snap["counts"] == [2, 1, 0, 0, 2]
    assert snap["total"] == 5


def test_keeps_only_the_newest_buckets():
    clock = Clock(0.0)
    arrivals = Arrivals(clock, kept=3)
    for t in (0.0, 0.1, 0.2, 0.3, 0.9):
        clock.t = t + 0.01
        arrivals.record()
    snap = arrivals.snapshot()
    assert snap["counts"] == [0, 0, 1]
    assert snap["start_epoch_s"] == 0.7
    assert snap["total"] == 5


def test_a_long_gap_does_not_loop_over_it():
    clock = Clock(10.0)
    arrivals = Arrivals(clock, kept=4)
    arrivals.record()
    clock.t = 10.0 + 3600
    arrivals.record()
    assert arrivals.snapshot()["counts"] == [0, 0, 0, 1]


def test_a_clock_step_back_still_counts_in_the_total():
    clock = Clock(50.0)
    arrivals = Arrivals(clock)
    arrivals.record()
    clock.t = 10.0
    arrivals.record()
    snap = arrivals.snapshot()
    assert snap["counts"] == [1] and snap["total"] == 2
