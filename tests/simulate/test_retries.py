"""The backoff model (labs/simulate/retries.py): its known behaviour, not its numbers."""

from __future__ import annotations

import math

import pytest

from labs.simulate.retries import STRATEGIES, Network, simulate, summarize, sweep


def mean_calls(strategy: str, clients: int, runs: int = 5) -> float:
    return summarize([simulate(strategy, clients, seed) for seed in range(runs)]).calls.mean


def test_without_backoff_calls_grow_with_the_square_of_n():
    small, large = mean_calls("none", 50), mean_calls("none", 400)
    exponent = math.log(large / small) / math.log(400 / 50)
    assert 1.7 <= exponent <= 2.1, exponent


def test_ten_clients_without_backoff_each_lose_to_everyone_before_them():
    # All read together; one write wins per round: N + (N - 1) + ... + 1 calls, give or
    # take a client whose hops were fast enough to win out of turn.
    assert abs(simulate("none", 10, 1).calls - 55) <= 3


@pytest.mark.parametrize("jitter", ["full-jitter", "equal-jitter", "decorrelated-jitter"])
def test_jitter_beats_plain_exponential_on_calls_and_time(jitter: str):
    exponential = summarize([simulate("exponential", 200, s) for s in range(5)])
    jittered = summarize([simulate(jitter, 200, s) for s in range(5)])
    assert jittered.calls.mean < 0.75 * exponential.calls.mean
    assert jittered.completion_s.mean < 0.5 * exponential.completion_s.mean


def test_every_client_succeeds_once():
    for strategy in STRATEGIES:
        run = simulate(strategy, 30, 3)
        assert run.calls >= 30 and run.completion_s > 0


def test_a_lone_client_succeeds_first_time_in_about_four_hops():
    run = simulate("exponential", 1, 7)
    assert run.calls == 1 and 0.02 < run.completion_s < 0.06


def test_the_first_exponential_retry_waits_base_times_two():
    # Two clients racing: the loser waits exactly base x 2 before it reads again, so the
    # last success is about 2 x 4 hops + 10 ms after the start.
    slow = Network(base_s=0.5)
    run = simulate("exponential", 2, 1, slow)
    assert run.calls == 3 and 1.0 < run.completion_s < 1.1


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    assert simulate("full-jitter", 100, 5) == simulate("full-jitter", 100, 5)
    assert simulate("full-jitter", 100, 5) != simulate("full-jitter", 100, 6)


def test_sweep_reports_each_strategy_at_each_n_over_the_runs():
    lines: list[str] = []
    out = sweep(["none", "full-jitter"], [5, 20], 3, progress=lines.append)
    assert [(s.strategy, s.clients, s.runs) for s in out] == [
        ("none", 5, 3), ("full-jitter", 5, 3), ("none", 20, 3), ("full-jitter", 20, 3)
    ]  # fmt: skip
    assert len(lines) == 4
    for s in out:
        assert s.calls.low <= s.calls.mean <= s.calls.high and s.calls.sd >= 0


@pytest.mark.parametrize("strategy, clients", [("linear", 10), ("none", 0), ("none", -3)])
def test_bad_input_is_refused(strategy: str, clients: int):
    with pytest.raises(ValueError):
        simulate(strategy, clients, 1)
