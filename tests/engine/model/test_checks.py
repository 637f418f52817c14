"""Tolerances as data: one line declares a check, and its grader detail is generated."""

from __future__ import annotations

import math

from labs.engine.analysis.metrics import summarize
from labs.engine.model.checks import extra, ratio_at_least, within


def result(name: str, **numbers: float):
    r = summarize(name, [])
    r.extra.update(numbers)
    return r


def test_within_judges_a_bound_and_says_both_numbers():
    check = within("amp_capped", "budget", extra("amp"), 0.0, 1.3, "attempts per request")
    ok, detail = check.evaluate({"budget": result("budget", amp=1.1)})
    assert ok and detail == "attempts per request: budget 1.1, expected 0 .. 1.3"
    ok, detail = check.evaluate({"budget": result("budget", amp=3.3)})
    assert not ok and "budget 3.3" in detail
    assert check.measure({"budget": result("budget", amp=3.3)}) == 3.3
    one_sided = within("n", "v", extra("x"), -math.inf, 5, "x")
    assert one_sided.evaluate({"v": result("v", x=5)}) == (True, "x: v 5, expected <= 5")


def test_a_missing_number_fails_instead_of_passing_on_a_default():
    check = within("n", "v", extra("missing"), -math.inf, math.inf, "x")
    ok, detail = check.evaluate({"v": result("v")})
    assert not ok and "v nan" in detail


def test_ratio_at_least_compares_two_variants():
    check = ratio_at_least("waves", "exponential", "full-jitter", extra("peak"), 2.0, "peak")
    results = {"exponential": result("e", peak=80), "full-jitter": result("f", peak=20)}
    ok, detail = check.evaluate(results)
    assert ok and detail == (
        "peak: exponential 80 vs full-jitter 20 (4.00x), expected exponential >= 2 x "
        "full-jitter = 40"
    )
    assert check.variants == ("exponential", "full-jitter") and check.measure(results) == 4.0
    results["exponential"] = result("e", peak=30)
    assert not check.evaluate(results)[0]
