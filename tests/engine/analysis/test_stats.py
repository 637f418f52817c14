"""labs/engine/analysis/stats.py's bucket_counts: a service's per-bucket counter on the
wall-clock grid, lined up with the run's first request."""

from __future__ import annotations

from labs.engine.analysis.stats import bucket_counts
from services.api.arrivals import Arrivals


def test_a_counter_snapshot_becomes_times_since_the_origin_and_counts():
    clock = iter([100.05, 100.07, 100.31, 100.32, 100.33]).__next__
    counter = Arrivals(clock=clock)
    for _ in range(5):
        counter.record()
    times, counts = bucket_counts(counter.snapshot(), origin_s=99.5)
    assert times == (0.5, 0.6, 0.7, 0.8) and counts == (2, 0, 0, 3)


def test_nothing_counted_or_not_a_counter_is_empty():
    assert bucket_counts(Arrivals().snapshot(), 0.0) == ((), ())
    assert bucket_counts(None, 0.0) == ((), ())
    assert bucket_counts({"start_epoch_s": 1.0, "bucket_s": 0, "counts": [1]}, 0.0) == ((), ())
