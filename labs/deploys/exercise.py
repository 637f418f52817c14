"""deploys' exercise: the rollout plan as a learner edits it, applied to `big-bang` (whose
v2 is a bad release), graded on the requests the deploy failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.deploys.measure import DeploysNumbers
from labs.deploys.rollout import Plan
from labs.deploys.scenario import MIN_REQUESTS, plan
from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant

MAX_FAILED = 60
"""A rollout that holds fails at most this many requests (big bang: well over 1,000)."""


def plan_of(variant: Variant) -> Plan:
    """The variant's rollout plan (a variant without one deploys as a big bang)."""
    if isinstance(variant.controller, Plan):
        return variant.controller
    return replace(plan(((0.0, 100),), gate=False), big_bang=True)


def settings(variant: Variant) -> str:
    p = plan_of(variant)
    steps = ", ".join(str(share) for _, share in p.steps) or "100"
    step_s = p.steps[1][0] - p.steps[0][0] if len(p.steps) > 1 else 2.0
    return f"""\
# deploys exercise. Every deploy of v2 fails requests: some while nothing listens, and
# then, because v2 is a bad release, 30 % of everything it answers. You cannot fix v2;
# change how it is rolled out, then run `lab grade deploys`.

[rollout]
# "replace": stop v1, start v2, send it all traffic (a big bang).
# "weights": v2 already runs beside v1; nginx weights move the traffic, one reload each.
strategy = "{"replace" if p.big_bang else "weights"}"
# With "weights": v2's share of the traffic in % at each step, and seconds between steps.
steps = [{steps}]
step_s = {step_s:g}

[gate]
# Watch v2's answers every interval_s and send everything back to v1 in one reload
# when more than `threshold` (a fraction) of them are 5xx.
enabled = {"true" if p.gate else "false"}
interval_s = {p.gate_interval_s:g}
threshold = {p.threshold:g}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    strategy = edits.choice(data, "rollout.strategy", ("replace", "weights"))
    shares = edits.wholes(data, "rollout.steps", 0, 100)
    step_s = edits.number(data, "rollout.step_s", 0.5, 5, "seconds")
    gate = edits.boolean(data, "gate.enabled")
    interval = edits.number(data, "gate.interval_s", 0.25, 5, "seconds")
    threshold = edits.number(data, "gate.threshold", 0.0, 1.0)
    steps = tuple((i * step_s, share) for i, share in enumerate(shares))
    p = replace(plan(steps, gate), gate_interval_s=interval, threshold=threshold,
                big_bang=strategy == "replace")  # fmt: skip
    return replace(base, controller=p)


def never_deployed(variant: Variant) -> str | None:
    p = plan_of(variant)
    if not p.big_bang and not any(share for _, share in p.steps):
        return (
            "rollout.steps never gives v2 any traffic: nothing fails because nothing is "
            "deployed. Ship v2; make the rollout safe."
        )
    return None


def failed(result: VariantResult) -> str:
    n = result.numbers(DeploysNumbers)
    return (
        f"{n.failed} of {n.requests} requests failed ({n.proxy_failed} by nginx while no "
        f"release listened), v2 answered {n.v2_answers}"
    )


def holds(result: VariantResult) -> bool:
    n = result.numbers(DeploysNumbers)
    return (
        n.proxy_failed == 0
        and n.failed <= MAX_FAILED
        and n.v2_answers > 0
        and n.requests >= MIN_REQUESTS
    )


EXERCISE = Exercise(
    task=(
        "Every deploy hurts users: a burst of 502s, then errors on a share of all requests "
        "until someone notices. Look at how traffic moves from v1 to v2 and what would "
        "notice a bad v2 before every user meets it."
    ),
    broken="big-bang",
    fixed="canary",
    settings=settings,
    apply=apply_settings,
    measure=failed,
    holds=holds,
    expected=f"0 requests failed by nginx, <= {MAX_FAILED} failed in all, v2 tried",
    advice="start v2 beside v1 and move traffic with weights (reloads fail nothing); let a "
    "small share of users meet v2 first, and let a gate take it back",
    guards=(never_deployed,),
    grade_in_parallel=False,
    hints=(
        "The 502s come from the moment nothing listens. What if v2 were started and ready "
        "before any traffic moved, and nginx were told to move it (a reload)?",
        'With strategy = "weights" and steps = [100] (blue-green) the 502s are gone, but '
        "every user meets the bad v2 until someone takes it back. What would take it back?",
        "Turn the gate on and start small: steps = [1, 10, 50, 100], step_s = 2: the gate "
        "sees v2's errors while it has 1 % of the traffic and rolls back in one reload.",
    ),
)
