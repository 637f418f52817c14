"""The overload model (labs/simulate) against the real lab: at each variant's own
parameters (read from labs/overload/scenario.py) the model's verdict is the outcome the
lab measured, in the same run test_lab.py judges (pytest -m lab; conftest.py)."""

from __future__ import annotations

import pytest

from labs.overload.scenario import RECOVERED, STAYS_DOWN
from labs.simulate.overload import simulate, verdict_of
from labs.simulate.overload_lab import NOT_MODELLED, lab_params

pytestmark = pytest.mark.lab

LEFT_OUT: set[str] = set()
"""Variants the model does not cover (NOT_MODELLED says why): none."""


def test_the_model_predicts_every_variants_measured_outcome(overload_run: dict):
    measured = {
        name: (variant["extra"]["goodput_ratio"], verdict_of(
            variant["extra"]["goodput_ratio"], RECOVERED, STAYS_DOWN))
        for name, variant in overload_run["variants"].items()
    }  # fmt: skip
    params = lab_params()
    assert set(NOT_MODELLED) == LEFT_OUT and set(measured) - set(params) <= LEFT_OUT
    modelled = {name: simulate(p) for name, p in params.items() if name in measured}
    assert set(modelled) == set(measured) - LEFT_OUT
    mismatched = {
        name: f"model {run.verdict} (ratio {run.goodput_ratio:.2f}), lab {measured[name][1]} "
        f"(ratio {measured[name][0]:.2f})"
        for name, run in modelled.items()
        if run.verdict != measured[name][1]
    }
    assert not mismatched, mismatched
    assert {run.verdict for run in modelled.values()} == {"recovers", "stays down"}
