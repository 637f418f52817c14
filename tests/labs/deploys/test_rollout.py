"""The rollout controller (labs/deploys/rollout.py) against a stand-in for the engine's
Steering: the weights it reloads, its gate's decisions, a big bang's order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from labs.deploys.rollout import Plan


class FakeSteering:
    """Records the controller's actions; v2's stats follow `answers` (one per read)."""

    def __init__(self, answers: list[Mapping[str, object]]) -> None:
        self.started = time.monotonic()
        self.answers = answers
        self.actions: list[tuple[str, object]] = []
        self.decisions: list[str] = []

    def now_s(self) -> float:
        return time.monotonic() - self.started

    async def until(self, at_s: float) -> None:
        await asyncio.sleep(max(0.0, at_s - self.now_s()))

    def log(self, decision: str, **details: object) -> None:
        self.decisions.append(decision)

    async def weights(self, weights: tuple[int, ...], label: str) -> None:
        self.actions.append(("weights", weights))

    async def stop(self, service: str, replica: int, label: str) -> None:
        self.actions.append(("stop", replica))

    async def start(self, service: str, replica: int, label: str) -> None:
        self.actions.append(("start", replica))

    async def remove(self, service: str, replica: int, label: str) -> None:
        self.actions.append(("remove", replica))

    async def stats(self, service: str, replica: int) -> Mapping[str, object]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def stats(ok: int, failed: int) -> Mapping[str, object]:
    return {"responses": {"200": ok, "500": failed}}


CANARY = Plan(0.0, ((0.0, 1), (0.1, 10), (0.2, 50)), gate=True, gate_interval_s=0.05,
              threshold=0.05)  # fmt: skip


async def test_the_gate_rolls_back_in_one_reload_when_v2_errs():
    s = FakeSteering([stats(0, 0), stats(20, 0), {}, stats(40, 0), stats(50, 5)])
    await CANARY(s)  # type: ignore[arg-type]
    assert s.actions[0] == ("weights", (99, 1)) and s.actions[-1] == ("weights", (100, 0))
    assert s.decisions[-1] == "rollback: 5 of 15 v2 answers failed"
    assert "gate: no decision (v2's stats did not come)" in s.decisions


async def test_a_healthy_canary_reaches_its_last_step_and_keeps_watching():
    s = FakeSteering([stats(n, 0) for n in range(0, 1000, 10)])
    task = asyncio.create_task(CANARY(s))  # type: ignore[arg-type]
    await asyncio.sleep(0.6)
    assert not task.done(), "the gate watches to the end of the load"
    task.cancel()
    assert [a for a in s.actions if a[0] == "weights"] == [
        ("weights", (99, 1)), ("weights", (90, 10)), ("weights", (50, 50)),
    ]  # fmt: skip


async def test_a_ramp_without_a_gate_and_a_big_bang():
    ramp = Plan(0.0, ((0.0, 2), (0.05, 50)), gate=False, gate_interval_s=1, threshold=0.05)
    s = FakeSteering([stats(0, 0)])
    await ramp(s)  # type: ignore[arg-type]
    assert s.actions == [("weights", (98, 2)), ("weights", (50, 50))]
    s = FakeSteering([stats(0, 0)])
    await Plan(0.0, ((0.0, 100),), False, 1, 0.05, big_bang=True)(s)  # type: ignore[arg-type]
    assert s.actions == [
        ("stop", 0), ("stop", 1), ("start", 1), ("remove", 0), ("weights", (0, 100)),
    ]  # fmt: skip
