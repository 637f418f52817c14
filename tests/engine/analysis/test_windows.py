"""labs.engine.analysis.windows.fault_took_s: how long a fault step took to apply."""

from __future__ import annotations

import math
from dataclasses import replace

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.windows import fault_took_s


def test_the_first_timed_step_of_an_action():
    result = VariantResult("v", 20, 0, 0, {}, 0, 0, 0, 0, 0, 0)
    result = replace(
        result,
        events=[
            {"t_s": 4.0, "what": "fault", "action": "kill", "took_s": 0.01},
            {"t_s": 9.0, "what": "sample", "action": "start", "took_s": 9.9},  # not a fault
            {"t_s": 10.0, "what": "fault", "action": "start", "took_s": 2.5},
            {"t_s": 15.0, "what": "fault", "action": "start", "took_s": 1.0},
        ],
    )
    assert fault_took_s(result, "start") == 2.5
    assert fault_took_s(result, "kill") == 0.01
    assert math.isnan(fault_took_s(result, "remove"))
    result = replace(
        result, events=[{"t_s": 10.0, "what": "fault", "action": "start"}]
    )  # not timed
    assert math.isnan(fault_took_s(result, "start"))
