"""circuit-breaker's measurements (labs/circuit_breaker/measure.py): phases, open windows,
the state band, per-endpoint numbers, and `derive`'s typed numbers whose JSON view is
results.json's `extra` (fast, no processes)."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, asdict, replace
from pathlib import Path

import pytest

from labs.circuit_breaker.measure import (
    TRIAL_MARGIN_S,
    CircuitNumbers,
    PhaseNumbers,
    Transition,
    Window,
    derive,
    endpoint_numbers,
    open_windows,
    phases,
    state_series,
    transitions,
)
from labs.circuit_breaker.scenario import NAIVE
from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.spec import DeriveContext

ORIGIN = 1_000.0
SLOW, RECOVER = {"latency_ms": 5000}, {"latency_ms": 0}


def _request(t_s: float, status: int = 200, ms: float = 10.0, name: str = "/catalog") -> Request:
    return Request(ORIGIN + t_s, name, status, ms)


def _fault(t_s: float, settings: dict[str, int]) -> dict[str, object]:
    return {"t_s": t_s, "what": "fault", "service": "payments", "replica": None,
            "settings": settings}  # fmt: skip


def test_phases_split_at_the_fault_steps_after_the_warm_up():
    result = summarize("v", [_request(0), _request(20)])
    result = replace(result, events=[_fault(6.0, SLOW), _fault(12.0, RECOVER)])
    windows = phases(result)
    assert windows["before"] == Window(1.0, 6.0)
    assert windows["during"] == Window(6.0, 12.0)
    assert windows["after"].start_s == 12.0 and windows["after"].holds(20.0)


def test_endpoint_numbers_per_phase_and_errors_by_kind():
    windows = {"before": Window(1, 6), "during": Window(6, 12), "after": Window(12, 20)}
    requests = [_request(2, ms=50), _request(3, ms=60), _request(7, 503, 2), _request(8, 0, 900)]
    numbers = endpoint_numbers(requests, ORIGIN, windows)
    assert numbers.requests == 4 and numbers.errors == 2
    assert numbers.errors_by_kind == {"503": 1, "no response": 1}
    assert numbers.before == PhaseNumbers(requests=2, errors=0, p50_ms=50, p99_ms=60)
    assert numbers.during.p99_ms == 900 and numbers.during.errors == 2
    assert numbers.after == PhaseNumbers(0, 0, 0, 0)


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
    assert xs == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    assert ys == (0, 0, 2, 2, 1, 0, 0, 0)


def test_transitions_from_the_gateway_stats_relative_to_the_first_request():
    result = summarize("v", [_request(0)])
    result = replace(result, services={"gateway": [{"downstreams": {"payments": {"breaker": {
        "transition_log": [{"epoch_s": ORIGIN + 6.5, "from": "closed", "to": "open"}],
    }}}}]})  # fmt: skip
    assert transitions(result) == (Transition(6.5, "closed", "open"),)
    assert transitions(summarize("v", [_request(0)])) == ()


# --- derive: a synthetic run, fault 1.5 .. 2.5 s, the breaker opening and closing once -------

REQUESTS = [
    _request(0.0, name="/checkout"), _request(0.2, ms=50.0),
    _request(1.1, ms=12.0, name="/checkout"), _request(1.2, ms=55.0), _request(1.3, ms=60.0),
    _request(1.6, 0, 900.0, "/checkout"), _request(1.7, ms=400.0),
    _request(1.8, 503, 2.0, "/checkout"), _request(2.0, 503, 3.0, "/checkout"),
    _request(2.2, ms=70.0), _request(2.6, ms=11.0, name="/checkout"), _request(2.9, ms=52.0),
]  # fmt: skip
MOVES = [(1.75, "closed", "open"), (2.3, "open", "half-open"), (2.55, "half-open", "closed")]


def _run() -> DeriveContext:
    result = summarize("naive", REQUESTS)
    result = replace(result, events=[_fault(1.5, SLOW), _fault(2.5, RECOVER)])
    breaker = {
        "reset_timeout_s": 0.5,
        "transition_log": [
            {"epoch_s": ORIGIN + t, "from": old, "to": new} for t, old, new in MOVES
        ],
    }
    result = replace(result, services={"gateway": [{"downstreams": {
        "payments": {"peak_in_flight": 3, "breaker": breaker,
                     "calls": {"200": 2, "timeout": 1, "breaker_open": 2}},
        "catalog": {"peak_in_flight": 1, "calls": {"200": 6}},
    }}]})  # fmt: skip
    result = replace(result, samples=[
        {"t_s": t, "service": "gateway", "replica": "gateway-1", "stats": {
            "downstreams": {"payments": {"in_flight": p}, "catalog": {"in_flight": c}},
            "shared_pool": {"waiting": w}}}
        for t, p, c, w in [(0.5, 0, 1, 0), (1.75, 3, 1, 2), (2.75, 0, 0, 0)]
    ] + [{"t_s": 1.0, "service": "payments", "replica": "payments-1", "stats": {}}])  # fmt: skip
    return DeriveContext(NAIVE, result, REQUESTS, Path("."))


def _phases(*phases: tuple[int, int, float, float]) -> dict[str, object]:
    """Flat per-phase keys, before / during / after: {"before_requests": ..., ...}."""
    keys = ("requests", "errors", "p50_ms", "p99_ms")
    return {f"{phase}_{key}": value
            for phase, values in zip(("before", "during", "after"), phases, strict=True)
            for key, value in zip(keys, values, strict=True)}  # fmt: skip


STEPS = [round(0.1 * step, 1) for step in range(30)]
EXTRA = {  # results.json's `extra` for this run, as the dict-building derive wrote it
    "fault_start_s": 1.5,
    "fault_end_s": 2.5,
    "checkout": {"requests": 6, "errors": 3, "errors_by_kind": {"503": 2, "no response": 1},
                 **_phases((1, 0, 12.0, 12.0), (3, 3, 3.0, 900.0), (1, 0, 11.0, 11.0)),
                 "gateway_calls": {"200": 2, "timeout": 1, "breaker_open": 2}},
    "checkout_p99_before_ms": 12.0,
    "checkout_p99_during_ms": 900.0,
    "checkout_p99_after_ms": 11.0,
    "catalog": {"requests": 6, "errors": 0, "errors_by_kind": {},
                **_phases((2, 0, 55.0, 60.0), (2, 0, 70.0, 400.0), (1, 0, 52.0, 52.0)),
                "gateway_calls": {"200": 6}},
    "catalog_p99_before_ms": 60.0,
    "catalog_p99_during_ms": 400.0,
    "catalog_p99_after_ms": 52.0,
    "breaker": True,
    "reset_timeout_s": 0.5,
    "transitions": [list(move) for move in MOVES],
    "transition_counts": {"closed->open": 1, "open->half-open": 1, "half-open->closed": 1},
    "final_state": "closed",
    "checkout_while_open": 2,
    "checkout_while_open_p99_ms": 3.0,
    "closed_after_recovery_s": 0.05,
    "peak_in_flight_payments": 3,
    "latency_p99": {
        "/checkout": [[0.0, 0.5, 1.0, 1.5, 2.0, 2.5], [10.0, None, 12.0, 900.0, 3.0, 11.0]],
        "/catalog": [[0.0, 0.5, 1.0, 1.5, 2.0, 2.5], [50.0, None, 60.0, 400.0, 70.0, 52.0]],
    },
    "in_flight": {
        "to payments": [[0.5, 1.75, 2.75], [0.0, 3.0, 0.0]],
        "to catalog": [[0.5, 1.75, 2.75], [1.0, 1.0, 0.0]],
        "waiting for the shared pool": [[0.5, 1.75, 2.75], [0.0, 2.0, 0.0]],
    },
    "breaker_state": [STEPS, [0] * 18 + [2] * 5 + [1] * 3 + [0] * 4],
}  # fmt: skip


def test_derive_is_typed_and_its_json_view_is_the_extra_results_json_has():
    numbers = derive(_run())
    assert isinstance(numbers, CircuitNumbers)
    # Same keys in the same order, same values and types: results.json is unchanged.
    assert json.dumps(asdict(numbers)) == json.dumps(EXTRA)
    assert numbers.transitions[0] == Transition(1.75, "closed", "open")
    assert numbers.catalog.during == PhaseNumbers(2, 0, 70.0, 400.0)
    with pytest.raises(FrozenInstanceError):
        numbers.__setattr__("final_state", "open")


def test_the_verdicts_the_checks_and_the_grade_share():
    numbers = derive(_run())
    assert numbers.catalog_ratio() == pytest.approx(400 / 60)
    assert numbers.catalog_unaffected(7.0, 2) and not numbers.catalog_unaffected(6.0, 2)
    assert not numbers.catalog_unaffected(7.0, 3)  # too few requests in a phase
    failing = replace(numbers.catalog, during_errors=1)
    assert not replace(numbers, catalog=failing).catalog_unaffected(7.0, 2)  # fast 504s count
    assert numbers.fails_fast(5.0, 2) and not numbers.fails_fast(3.0, 2)
    assert numbers.cycles_and_closes(0.05) and not numbers.cycles_and_closes(0.04)
    reopened = replace(numbers, transitions=numbers.transitions[:2], final_state="half-open")
    assert not reopened.cycles_and_closes(1.0)


def test_numbers_are_read_typed_from_a_result():
    result: VariantResult = summarize("naive", REQUESTS)
    with pytest.raises(TypeError, match="no CircuitNumbers"):
        result.numbers(CircuitNumbers)
    result = replace(result, derived=derive(_run()))
    assert result.numbers(CircuitNumbers).final_state == "closed"
