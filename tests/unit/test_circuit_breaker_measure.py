"""The circuit-breaker lab's arithmetic: phases, open windows, the state band, per-endpoint
numbers (fast, no processes)."""

from __future__ import annotations

from labs.circuit_breaker.measure import (
    TRIAL_MARGIN_S,
    Transition,
    Window,
    endpoint_numbers,
    open_windows,
    phases,
    state_series,
    transitions,
)
from labs.engine.metrics import Request, summarize

ORIGIN = 1_000.0


def _request(t_s: float, status: int = 200, ms: float = 10.0, name: str = "/catalog") -> Request:
    return Request(ORIGIN + t_s, name, status, ms)


def test_phases_split_at_the_fault_steps_after_the_warm_up():
    result = summarize("v", [_request(0), _request(20)])
    result.events = [
        {"t_s": 6.0, "what": "fault", "service": "payments", "replica": None,
         "settings": {"latency_ms": 5000}},
        {"t_s": 12.0, "what": "fault", "service": "payments", "replica": None,
         "settings": {"latency_ms": 0}},
    ]  # fmt: skip
    windows = phases(result)
    assert windows["before"] == Window(1.0, 6.0)
    assert windows["during"] == Window(6.0, 12.0)
    assert windows["after"].start_s == 12.0 and windows["after"].holds(20.0)


def test_endpoint_numbers_per_phase_and_errors_by_kind():
    windows = {"before": Window(1, 6), "during": Window(6, 12), "after": Window(12, 20)}
    requests = [_request(2, ms=50), _request(3, ms=60), _request(7, 503, 2), _request(8, 0, 900)]
    numbers = endpoint_numbers(requests, ORIGIN, windows)
    assert numbers["requests"] == 4 and numbers["errors"] == 2
    assert numbers["errors_by_kind"] == {"503": 1, "no response": 1}
    assert numbers["before_p99_ms"] == 60 and numbers["before_requests"] == 2
    assert numbers["during_p99_ms"] == 900 and numbers["during_errors"] == 2
    assert numbers["after_requests"] == 0 and numbers["after_p99_ms"] == 0


def test_open_windows_end_before_the_trial_can_arrive():
    moves = [Transition(6.5, "closed", "open"), Transition(8.6, "open", "half-open"),
             Transition(9.6, "half-open", "open")]  # fmt: skip
    assert open_windows(moves, 2.0) == [
        Window(6.5, 8.5 - TRIAL_MARGIN_S),
        Window(9.6, 11.6 - TRIAL_MARGIN_S),
    ]


def test_state_series_is_a_band_of_the_state_at_every_step():
    moves = [Transition(0.2, "closed", "open"), Transition(0.4, "open", "half-open"),
             Transition(0.5, "half-open", "closed")]  # fmt: skip
    xs, ys = state_series(moves, 0.7)
    assert xs == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert ys == [0, 0, 2, 2, 1, 0, 0, 0]


def test_transitions_from_the_gateway_stats_relative_to_the_first_request():
    result = summarize("v", [_request(0)])
    result.services = {"gateway": [{"downstreams": {"payments": {"breaker": {
        "transition_log": [{"epoch_s": ORIGIN + 6.5, "from": "closed", "to": "open"}],
    }}}}]}  # fmt: skip
    assert transitions(result) == [Transition(6.5, "closed", "open")]
    assert transitions(summarize("v", [_request(0)])) == []
