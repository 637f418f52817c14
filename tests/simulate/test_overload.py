"""The overload model (labs/simulate/overload.py) at DESIGN.md's sketch parameters
(OverloadParams' defaults: 20 workers x 20 ms, 700/s, timeout 1 s, 4 attempts, work x3),
and the overload lab's variants as its parameters (labs/simulate/overload_lab.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labs.overload import scenario
from labs.simulate.overload import GatewayLimit, OverloadParams, simulate, sweep
from labs.simulate.overload_lab import NOT_MODELLED, lab_params

SKETCH = OverloadParams()


def test_a_short_trigger_recovers_and_a_long_one_stays_down():
    short, long = simulate(replace(SKETCH, trigger_s=2)), simulate(replace(SKETCH, trigger_s=3))
    assert short.verdict == "recovers" and short.goodput_after > 0.95
    assert long.verdict == "stays down" and long.goodput_after == 0
    # Stuck: every request sent about `attempts` times, the server busy with late work.
    assert long.attempts > 3 * long.requests and long.api_late > long.api_completed / 2


@pytest.mark.parametrize(
    "fix",
    [
        {"queue": "lifo"},
        {"queue_limit": 100},
        {"retry_budget": True},
        {"throttle": True},
        {"attempts": 1},
        {"rate_per_s": 500.0},
        {"gateway": GatewayLimit()},
    ],
)
def test_each_fix_recovers_from_the_long_trigger(fix: dict):
    assert simulate(replace(SKETCH, trigger_s=3, **fix)).verdict == "recovers"


def test_dropping_expired_requests_from_a_fifo_queue_does_not_recover():
    run = simulate(replace(SKETCH, trigger_s=3, shed_expired=True))
    assert run.verdict == "stays down" and run.shed > 0


def test_the_same_seed_gives_the_same_run():
    params = replace(SKETCH, trigger_s=3, throttle=True, arrivals_s=20)
    assert simulate(params) == simulate(params)
    assert simulate(params).requests != simulate(replace(params, seed=2)).requests


def test_the_sweep_has_a_boundary_monotone_in_length_and_factor():
    boundary = sweep(replace(SKETCH, arrivals_s=30), (1.0, 2.0, 4.0, 6.0), (2.0, 3.0, 5.0))
    assert len(boundary.ratios) == 3 and all(len(row) == 4 for row in boundary.ratios)
    down = [[v == "stays down" for v in row] for row in boundary.verdicts]
    assert not down[0][0] and down[-1][-1]
    for i, row in enumerate(down):
        assert row == sorted(row), "longer triggers never recover where shorter ones stay down"
        if i:
            assert all(b or not a for a, b in zip(down[i - 1], row, strict=True))


def test_progress_is_reported_in_simulated_seconds():
    seen: list[float] = []
    simulate(replace(SKETCH, arrivals_s=20), seen.append)
    assert [round(t) for t in seen][:3] == [5, 10, 15]


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_per_s": -1.0},
        {"workers": 0},
        {"factor": 0.5},
        {"trigger_s": 40.0},
        {"rate_per_s": 1e6, "arrivals_s": 3600.0},
        {"gateway": GatewayLimit(deadline_s=0.5)},
    ],
)
def test_parameters_the_model_cannot_mean_are_refused(bad: dict):
    with pytest.raises(ValueError):
        simulate(replace(SKETCH, **bad))


def test_the_lab_variants_are_read_from_the_scenario_and_the_rest_listed():
    params = lab_params()
    names = {v.name for v in scenario.VARIANTS}
    assert set(params) == names and not NOT_MODELLED
    broken = params["broken"]
    assert (broken.rate_per_s, broken.workers, broken.work_ms) == (
        scenario.RATE, scenario.WORKERS, scenario.WORK_MS
    )  # fmt: skip
    assert (broken.factor, broken.trigger_s) == (scenario.FACTOR, scenario.LONG_S)
    assert params["short-trigger"].trigger_s == scenario.SHORT_S
    assert params["bounded-queue"].queue_limit == scenario.QUEUE_LIMIT
    assert params["retry-budget"].retry_budget and params["client-throttling"].throttle
    gateway = params["adaptive-limit"].gateway
    assert gateway is not None and gateway.target_ms == scenario.LIMIT_TARGET_MS
    assert gateway.deadline_s == scenario.GATEWAY_DEADLINE_S


def test_at_the_labs_parameters_only_broken_stays_down():
    verdicts = {name: simulate(p).verdict for name, p in lab_params().items()}
    expected = {name: "recovers" for name in verdicts} | {"broken": "stays down"}
    assert verdicts == expected
