"""Check builders shared by labs. Each detail says what was expected and what was
measured, in numbers, so a failing check reads like a grader's note."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.windows import first_fault_s
from labs.engine.model.spec import Check


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def status_at_least(variant: str, status: int, count: int, share: float = 0.0) -> Check:
    """`variant` reproduces the failure: >= count responses of `status` and >= share of all."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        n = r.count(status)
        passed = n >= count and r.share(status) >= share
        wanted = f">= {count}" + (f" and >= {share * 100:g} %" if share else "")
        return (
            passed,
            f"{variant}: {n} of {r.requests} were {status} ({_pct(n, r.requests)}), "
            f"expected {wanted}",
        )

    return Check(
        f"{variant}_reproduces_{status}",
        evaluate,
        (variant,),
        measure=lambda results: results[variant].count(status),
    )


def status_absent(variant: str, status: int, min_requests: int) -> Check:
    """`variant` shows none of `status`, over enough requests for that to mean something."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        n = r.count(status)
        passed = n == 0 and r.requests >= min_requests
        return passed, (
            f"{variant}: {n} of {r.requests} were {status} ({_pct(n, r.requests)}), "
            f"expected 0 over >= {min_requests} requests"
        )

    return Check(
        f"{variant}_has_no_{status}",
        evaluate,
        (variant,),
        measure=lambda results: results[variant].count(status),
    )


def nginx_errors_at_least(variant: str, kinds: tuple[str, ...], count: int, label: str) -> Check:
    """nginx's error log for `variant` holds >= count entries of the given kinds."""

    def entries(results: Mapping[str, VariantResult]) -> int:
        return sum(results[variant].nginx_errors.get(kind, 0) for kind in kinds)

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        seen = {kind: r.nginx_errors.get(kind, 0) for kind in kinds}
        total = sum(seen.values())
        listed = ", ".join(f"{kind} {n}" for kind, n in seen.items())
        return (
            total >= count,
            f"{variant}: nginx error log has {total} ({listed}), expected >= {count}",
        )

    return Check(f"{variant}_error_log_shows_{label}", evaluate, (variant,), measure=entries)


# --- tolerances as data ------------------------------------------------------------------
# Most checks compare one number of a variant with a bound, or two variants' numbers by a
# factor. Declared as data, their grader detail is generated: what was measured, what was
# expected, in numbers.

Number = Callable[[VariantResult], float]
"""One number of a variant's result, e.g. `extra("outage_amplification")`."""


def extra(key: str) -> Number:
    """A number from the lab's derive hook (NaN when missing, so a check fails)."""
    return lambda result: result.number(key)


def within(name: str, variant: str, value: Number, low: float, high: float, what: str) -> Check:
    """low <= value(variant) <= high (use -inf / inf for a one-sided bound)."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        v = value(results[variant])
        return low <= v <= high, f"{what}: {variant} {v:g}, expected {_bounds(low, high)}"

    return Check(name, evaluate, (variant,), measure=lambda results: value(results[variant]))


def ratio_at_least(
    name: str, high: str, low: str, value: Number, factor: float, what: str
) -> Check:
    """value(high) >= factor x value(low)."""

    def ratio(results: Mapping[str, VariantResult]) -> float:
        a, b = value(results[high]), value(results[low])
        return a / b if b else math.inf if a > 0 else math.nan

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        a, b = value(results[high]), value(results[low])
        return a >= factor * b, (
            f"{what}: {high} {a:g} vs {low} {b:g} ({ratio(results):.2f}x), expected {high} >= "
            f"{factor:g} x {low} = {factor * b:g}"
        )

    return Check(name, evaluate, (high, low), measure=ratio)


def _bounds(low: float, high: float) -> str:
    if math.isinf(low):
        return f"<= {high:g}"
    if math.isinf(high):
        return f">= {low:g}"
    return f"{low:g} .. {high:g}"


def load_before_fault(min_s: float, name: str = "steady_load_before_the_fault") -> Check:
    """Every variant had `min_s` of measured load before its first fault: the schedule
    counts from Locust's start, which a busy machine can delay by seconds, and a run
    whose fault landed early measured a different experiment."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        lead = {n: first_fault_s(r) for n, r in results.items()}
        short = {n: t for n, t in lead.items() if not t >= min_s}
        shown = ", ".join(f"{n} {t:g}" for n, t in short.items()) or f"min {min(lead.values()):g}"
        return not short, (
            f"seconds of load before the first fault: {shown}, expected >= {min_s:g} in every "
            "variant (if not: Locust started late on a busy machine; run again)"
        )

    return Check(
        name,
        evaluate,
        (),
        not_applicable="a precondition of the experiment (load ran before the fault), not a fix",
        measure=lambda results: min(first_fault_s(r) for r in results.values()),
    )
