"""deploys' measurements (labs/deploys/measure.py) on synthetic client records and events."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from labs.deploys.measure import crossing, derive
from labs.deploys.scenario import CANARY
from labs.engine.analysis.metrics import Request, summarize
from labs.engine.model.spec import DeriveContext

T0 = 1_000.0


def request(t: float, status: int = 200, replica: str = "api-1", ms: float = 2.0) -> Request:
    return Request(T0 + t, "/work", status, ms, replica)


def test_crossing_is_the_first_answer_over_the_threshold_in_the_trailing_window():
    ok = [request(t / 10, replica="api-2") for t in range(40)]  # 10 answers/s, all good
    assert math.isnan(crossing(ok, 1.0, 0.05))
    bad = [*ok, request(4.0, 500, "api-2", ms=100)]
    assert crossing(bad, 1.0, 0.05) == T0 + 4.1  # 1 of 11 in the last second: 9 %
    assert math.isnan(crossing(bad, 1.0, 0.10))
    assert math.isnan(crossing([], 1.0, 0.05))


def test_derive_counts_failures_reloads_rollback_and_the_window_p99(tmp_path: Path):
    requests = [
        *(request(t / 10) for t in range(100)),  # v1, 0-10 s
        request(5.0, 200, "api-2"),
        request(5.5, 500, "api-2"),
        request(6.0, 502, ""),  # nginx's own
        request(6.2, 200, ms=900.0),
    ]
    result = summarize("canary", requests)
    origin = result.origin_s
    events: list[dict[str, object]] = [
        {"t_s": 4.9, "what": "fault", "action": "weights", "label": "v2 1%", "took_s": 0.02},
        {"t_s": 4.95, "what": "decision", "decision": "v2 gets 1 %", "share": 1},
        {"t_s": 6.1, "what": "fault", "action": "weights", "label": "rollback", "took_s": 0.02},
    ]
    result = replace(result, events=events, raw_requests=requests)
    n = derive(DeriveContext(CANARY, result, requests, tmp_path))
    assert origin == T0
    assert (n.requests, n.failed, n.proxy_failed) == (104, 2, 1)
    assert (n.v2_answers, n.v2_failed, n.reloads) == (2, 1, 2)
    assert n.deploy_s == 4.9 and n.crossing_s == 5.502 and n.last_v2_s == 5.5
    assert n.rollback_lag_s == round(5.5 - 5.502, 3)
    assert n.p99_window_ms == 900.0  # requests started in [4.9, 11.9)
    assert n.decisions == (
        "4.90 s: v2 1% (0.02 s)",
        "4.95 s: v2 gets 1 % (share 1)",
        "6.10 s: rollback (0.02 s)",
    )
