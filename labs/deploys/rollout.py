"""The rollout controller: moves traffic from v1 (api-1) to v2 (api-2) while the load runs.

Every move is one nginx reload with new upstream weights (0 = `down`). With a gate,
every `gate_interval_s` it reads v2's /admin/stats, and when more than `threshold` of
the answers v2 gave since the last look were 5xx it sends everything back to v1 in one
reload. Each move and each gate reading is logged (the variant's events, the report).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from labs.engine.analysis.stats import mapping, whole
from labs.engine.topology.steering import Steering

V1, V2 = 0, 1
"""Replica indices of the api: api-1 runs v1, api-2 runs v2."""


@dataclass(frozen=True)
class Plan:
    deploy_at_s: float
    steps: tuple[tuple[float, int], ...]
    """(seconds after the deploy, v2's share of the traffic in %)."""
    gate: bool
    gate_interval_s: float
    threshold: float
    big_bang: bool = False

    async def __call__(self, s: Steering) -> None:
        """The controller the runner starts beside the load (`Variant.controller`)."""
        await rollout(s, self)


def weights(share: int) -> tuple[int, int]:
    return (100 - share, share)


async def answered(s: Steering) -> tuple[int, int] | None:
    """(answers, 5xx answers) v2 has given so far; None when its stats did not come."""
    responses = (await s.stats("api", V2)).get("responses")
    if responses is None:
        return None
    counts = {int(code): whole(n) for code, n in mapping(responses).items()}
    return sum(counts.values()), sum(n for code, n in counts.items() if code >= 500)


async def big_bang(s: Steering) -> None:
    await s.stop("api", V1, "stop v1")
    await s.stop("api", V2, "stop v2")
    await s.start("api", V2, "start v2")
    await s.remove("api", V1, "v1 out of the upstream")  # it is gone: nginx must forget it
    await s.weights(weights(100), "v2 100%")
    s.log("big bang: v2 takes all traffic", share=100)


async def rollout(s: Steering, plan: Plan) -> None:
    await s.until(plan.deploy_at_s)
    if plan.big_bang:
        return await big_bang(s)
    steps, seen = list(plan.steps), await answered(s)
    while steps or plan.gate:
        if steps and s.now_s() >= plan.deploy_at_s + steps[0][0]:
            share = steps.pop(0)[1]
            await s.weights(weights(share), f"v2 {share}%")
            s.log(f"v2 gets {share} %", share=share)
        if not plan.gate:
            if steps:
                await s.until(plan.deploy_at_s + steps[0][0])
            continue
        await asyncio.sleep(plan.gate_interval_s)
        now = await answered(s)
        if now is None or seen is None:
            s.log("gate: no decision (v2's stats did not come)")
            seen = now
            continue
        (total, errors), seen = (now[0] - seen[0], now[1] - seen[1]), now
        rate = errors / total if total else 0.0
        s.log("gate", answers=total, errors=errors, error_rate=round(rate, 4))
        if rate > plan.threshold:
            await s.weights(weights(0), "rollback")
            s.log(f"rollback: {errors} of {total} v2 answers failed", share=0)
            return None
    return None
