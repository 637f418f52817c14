"""The api's slow tail (services.api.faults: tail_rate, tail_factor): a share of work
requests whose injected latency is tail_factor times longer."""

from __future__ import annotations

import random

import pytest

from services.api import __main__ as cli
from services.api.faults import FaultError, Faults


def test_a_share_of_requests_gets_the_tail() -> None:
    faults, rng = Faults(latency_ms=20, tail_rate=0.05, tail_factor=25), random.Random(1)
    latencies = [faults.latency_s(rng) for _ in range(10_000)]
    assert set(latencies) == {0.02, 0.5}
    assert 400 <= latencies.count(0.5) <= 600


def test_no_tail_by_default_and_no_random_draw() -> None:
    rng = random.Random(1)
    assert Faults(latency_ms=20).latency_s(rng) == 0.02
    assert rng.random() == random.Random(1).random()


@pytest.mark.parametrize("change", [{"tail_rate": 1.5}, {"tail_factor": 0.5}])
def test_bad_tail_settings_are_refused(change: dict[str, float]) -> None:
    faults = Faults()
    with pytest.raises(FaultError, match="tail_"):
        faults.update(change)
    assert (faults.tail_rate, faults.tail_factor) == (0.0, 20.0)


def test_the_options_set_the_tail(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.parse_args(["--port", "1", "--tail-rate", "0.05", "--tail-factor", "25"])
    assert (args.tail_rate, args.tail_factor) == (0.05, 25)
    assert cli.main(["--port", "1", "--tail-rate", "2"]) == 2
    assert "tail_rate" in capsys.readouterr().err
