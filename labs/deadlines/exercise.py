"""deadlines' exercise: each hop's timeouts, deadline propagation and the api's shedding,
as a learner edits them, graded on the api's wasted work in the slow phase."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.deadlines.measure import DeadlineNumbers
from labs.deadlines.scenario import (
    BUDGET_MS,
    CATALOG,
    EDGE_TIMEOUTS,
    MIN_USEFUL_WORK_S,
    ORDERS_TIMEOUTS,
    WASTED_AT_MOST_PCT,
    api,
    edge,
    orders,
)
from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, ServiceSpec, Variant


def _args(variant: Variant, name: str) -> Mapping[str, object]:
    return next(s.args for s in variant.services if s.name == name)


def _on(value: object) -> str:
    return "true" if value == "on" else "false"


def settings(variant: Variant) -> str:
    e, o, a = (_args(variant, name) for name in ("edge", "orders", "api"))
    return f"""\
# deadlines exercise. When the api turns slow, it spends most of its time on requests
# whose client ({BUDGET_MS} ms budget, not yours to change) has already given up.
# Change the values below, then run `lab grade deadlines`.

[edge]
# Seconds the edge waits for the orders hop.
timeout_s = {e["attempt-timeout"]}
# Read the client's budget (X-Timeout-Ms) and pass what is left downstream.
deadline_propagation = {_on(e["deadline-propagation"])}

[orders]
# Seconds one attempt waits for the api, and attempts in all (the first included).
attempt_timeout_s = {o["attempt-timeout"]}
attempts = {o["retry-max-attempts"]}
deadline_propagation = {_on(o["deadline-propagation"])}

[deadline]
# Kept back at each hop from the budget it passes on (ms), and the least budget worth a
# call (ms): with less left a hop answers 504 without calling.
margin_ms = {e["deadline-margin-ms"]}
min_budget_ms = {e["min-budget-ms"]}

[api]
# Shed a queued request whose deadline passed, or that could not finish before it.
shed_expired = {_on(a["shed-expired"])}
shed_hopeless = {_on(a["shed-hopeless"])}
"""


def _flag(on: bool) -> str:
    return "on" if on else "off"


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    margin = edits.number(data, "deadline.margin_ms", 0, 500, "ms")
    min_budget = edits.number(data, "deadline.min_budget_ms", 0, 500, "ms")
    hop = {"deadline-margin-ms": margin, "min-budget-ms": min_budget}
    edge_args = {
        **EDGE_TIMEOUTS,
        "attempt-timeout": edits.number(data, "edge.timeout_s", 0.05, 30, "seconds"),
        "deadline-propagation": _flag(edits.boolean(data, "edge.deadline_propagation")),
        **hop,
    }
    orders_args = {
        **ORDERS_TIMEOUTS,
        "attempt-timeout": edits.number(data, "orders.attempt_timeout_s", 0.05, 30, "seconds"),
        "retry-max-attempts": edits.whole(data, "orders.attempts", 1, 10),
        "deadline-propagation": _flag(edits.boolean(data, "orders.deadline_propagation")),
        **hop,
    }
    shedding = {
        "shed-expired": _flag(edits.boolean(data, "api.shed_expired")),
        "shed-hopeless": _flag(edits.boolean(data, "api.shed_hopeless")),
    }
    services: tuple[ServiceSpec, ...] = (
        api(shedding),
        CATALOG,
        orders(orders_args),
        edge(edge_args),
    )
    return replace(base, services=services)


def retries_removed(variant: Variant) -> str | None:
    if int(str(_args(variant, "orders")["retry-max-attempts"])) < 2:
        return (
            "orders.attempts = 1 turns the orders hop's retries off. Fewer attempts pile up "
            "in the api's queue, but a blip then fails every call it hits. Keep the retries; "
            "make them stop at the caller's deadline."
        )
    return None


def edge_waits_too_long(variant: Variant) -> str | None:
    timeout = float(str(_args(variant, "edge")["attempt-timeout"]))
    if timeout * 1000 < BUDGET_MS / 4:
        return (
            f"edge.timeout_s = {timeout:g} gives up long before the client's {BUDGET_MS} ms "
            "budget: most requests would fail even with a healthy api. Keep the edge's "
            "timeout near the client's budget and let the budget bound the inner hops."
        )
    return None


def wasted(result: VariantResult) -> str:
    n = result.numbers(DeadlineNumbers)
    return (
        f"{n.wasted_pct:.1f} % of the api's slow-phase work ({n.wasted_work_s:.1f} of "
        f"{n.api_work_s:.1f} work-seconds) done after the client stopped waiting; "
        f"{n.useful_work_s:.1f} useful"
    )


def holds(result: VariantResult) -> bool:
    n = result.numbers(DeadlineNumbers)
    return n.wasted_pct <= WASTED_AT_MOST_PCT and n.useful_work_s >= MIN_USEFUL_WORK_S


EXERCISE = Exercise(
    task=(
        "When the api turns slow, checkout times out for clients, yet the api is busier "
        "than ever: it works through a queue of requests whose clients gave up long ago, "
        "and the orders hop keeps retrying them. Look at what each hop knows about how "
        "long its caller will still wait."
    ),
    broken="per-hop",
    fixed="deadline",
    settings=settings,
    apply=apply_settings,
    measure=wasted,
    holds=holds,
    expected=f"<= {WASTED_AT_MOST_PCT:g} % of the api's slow-phase work wasted, with >= "
    f"{MIN_USEFUL_WORK_S:g} useful work-seconds",
    advice="each hop must know the caller's remaining budget, and the api must not start "
    "work that cannot finish within it",
    guards=(retries_removed, edge_waits_too_long),
    hints=(
        "The client gives up after its budget, but nothing tells the hops below. Which "
        "timeouts are longer than the caller's? What does the api do with a request whose "
        "client is gone?",
        "Pass the budget down: deadline_propagation = true on both hops sends what is left "
        "of it with every call (X-Timeout-Ms), so inner hops and retries stop in time.",
        "The api still starts queued work it cannot finish in time: set api.shed_expired "
        "and api.shed_hopeless = true (they read the propagated budget).",
    ),
    grade_in_parallel=False,
)
