"""stale-dns: the api moves to a new address; does nginx follow it?

The lab: its checks over the windows around the move (measure.py) of the variants in
scenario.py, and `LAB`. The exercise is in exercise.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Check, Lab
from labs.stale_dns.exercise import EXERCISE
from labs.stale_dns.measure import StaleDnsNumbers, derive
from labs.stale_dns.scenario import MIN_FAILED_PCT, MIN_REQUESTS, SETTLE_S, VARIANTS


def _when(n: StaleDnsNumbers) -> str:
    return f"the move ran {n.move_s:.1f}-{n.moved_s:.1f} s"


def keeps_the_dead_address(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = results[variant].numbers(StaleDnsNumbers)
        return n.stale(), (
            f"{variant}: after the move {n.after}, before it {n.before} ({_when(n)}); "
            f"expected >= {MIN_FAILED_PCT:g} % failed after, 0 before, over >= "
            f"{MIN_REQUESTS} requests"
        )

    return Check(
        f"{variant}_keeps_the_dead_address".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: results[variant].numbers(StaleDnsNumbers).after_failed_pct,
    )


def follows_the_move(variant: str) -> Check:
    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        n = results[variant].numbers(StaleDnsNumbers)
        last = f"{n.last_failure_s:.1f} s" if n.last_failure_s == n.last_failure_s else "none"
        return n.followed(), (
            f"{variant}: from {SETTLE_S:g} s after the move on {n.settled} "
            f"({_when(n)}; last failure {last} after it); expected 0 over >= "
            f"{MIN_REQUESTS} requests"
        )

    return Check(
        f"{variant}_follows_the_move".replace("-", "_"),
        evaluate,
        (variant,),
        measure=lambda results: results[variant].numbers(StaleDnsNumbers).settled_failed,
    )


LAB = Lab(
    name="stale-dns",
    title="Stale DNS: nginx keeps sending to the address it resolved at start",
    question="The api moved to a new address and DNS says so: why does nginx keep "
    "answering 502, and how does it follow the move?",
    guide=Path(__file__).with_name("guide.md"),
    variants=VARIANTS,
    checks=(
        keeps_the_dead_address("resolve-once"),
        follows_the_move("resolver"),
        follows_the_move("reload"),
    ),
    key_metrics=(
        "requests",
        "status.502",
        "status.504",
        "extra.after_requests",
        "extra.after_failed_pct",
        "extra.settled_requests",
        "extra.settled_failed",
        "extra.last_failure_s",
    ),
    derive=derive,
    exercise=EXERCISE,
)
