"""`lab check --repeat N`: pass rate and the band of the judged number, per check, from
synthetic CheckResults; and the engine's check builders report the number they judge."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.checks import nginx_errors_at_least, status_absent, status_at_least
from labs.engine.model.spec import Check
from labs.engine.model.verdicts import CheckResult, judge
from labs.engine.reporting import stability
from tests.engine.model.test_verdicts import lab_with


def ok(name: str, value: float | None = None) -> CheckResult:
    return CheckResult(name, True, "d", proof="proven", value=value)


def test_pass_rate_and_band_over_runs():
    runs = [
        [ok("a", 12), ok("b")],
        [ok("a", 30), ok("b")],
        [replace(ok("a", 41), passed=False), ok("b")],
    ]
    a, b = stability.summarize(runs)
    assert (a.name, a.runs, a.passed, a.verdicts) == ("a", 3, 2, ("PASS", "PASS", "FAIL"))
    assert a.pass_rate == pytest.approx(2 / 3) and not a.stable
    assert (a.min, a.median, a.max) == (12, 30, 41)
    assert a.line("k") == "2/3 (67 %) k/a: min 12 / median 30 / max 41"
    assert b.stable and (b.min, b.median, b.max) == (None, None, None)
    assert b.line("k") == "3/3 (100 %) k/b: n/a"


def test_a_defect_or_not_judged_run_is_not_a_pass():
    defect = CheckResult("a", True, "d", proof="defect", value=1)
    unjudged = CheckResult("a", False, "not judged", judged=False)
    (a,) = stability.summarize([[ok("a", 1)], [defect], [unjudged]])
    assert a.verdicts == ("PASS", "DEFECT", "NOT JUDGED") and a.passed == 1
    assert a.values == (1, 1, None) and a.median == 1


def test_a_check_missing_from_a_run_counts_as_not_judged_there():
    a, b = stability.summarize([[ok("a", 1)], [ok("a", 2), ok("b", 5)]])
    assert (a.name, b.name) == ("a", "b")
    assert b.verdicts == ("NOT JUDGED", "PASS") and b.values == (None, 5)


def test_median_of_an_even_number_of_runs_and_fractions():
    (a,) = stability.summarize([[ok("a", v)] for v in (0.5, 2, 1, 10)])
    assert a.median == 1.5
    assert a.line("k").endswith("min 0.5 / median 1.5 / max 10")


def test_lab_document_is_json_and_passes_only_when_every_check_passed_every_run():
    runs = [[ok("a", 3), ok("b")], [ok("a", 4), ok("b")]]
    document = stability.lab_document("k", runs, ["r/1", "r/2"])
    assert json.loads(json.dumps(document)) == document
    assert document["passed"] is True and document["runs"] == 2
    assert document["results_dirs"] == ["r/1", "r/2"]
    assert document["checks"][0] == {
        "name": "a", "runs": 2, "passed": 2, "pass_rate": 1.0, "verdicts": ["PASS", "PASS"],
        "values": [3, 4], "min": 3, "median": 3.5, "max": 4,
    }  # fmt: skip
    assert document["checks"][1]["min"] is None
    runs[1][1] = replace(ok("b"), passed=False)
    assert stability.lab_document("k", runs)["passed"] is False


@pytest.mark.parametrize("text", ["0", "51", "-1", "abc", "2.5", ""])
def test_repeat_count_refuses_bad_values(text):
    with pytest.raises(argparse.ArgumentTypeError):
        stability.repeat_count(text)


def test_repeat_count_accepts_the_range():
    assert [stability.repeat_count(t) for t in ("1", "10", "50")] == [1, 10, 50]


def result(name: str, statuses: list[int], nginx_errors: dict[str, int] | None = None):
    r = summarize(name, [Request(1000.0 + i, "GET /", s, 5.0) for i, s in enumerate(statuses)])
    return replace(r, nginx_errors=nginx_errors or {})


def test_engine_builders_report_the_number_they_judge():
    results: dict[str, VariantResult] = {
        "broken": result("broken", [502] * 20 + [200] * 80, {"reset": 3, "closed": 4, "x": 9}),
        "fixed": result("fixed", [200] * 100, {"reset": 2}),
    }
    lab = lab_with(
        status_at_least("broken", 502, count=10),
        status_absent("fixed", 502, 50),
        nginx_errors_at_least("broken", ("reset", "closed"), 1, "resets"),
        Check("no_value", lambda r: (r["fixed"].count(502) == 0, "d"), ("fixed",)),
        Check("raises", lambda r: (True, "d"), ("fixed",), measure=lambda r: r["nope"].requests),
    )
    values = {c.name: c.value for c in judge(lab, results)}
    assert values == {
        "broken_reproduces_502": 20,
        "fixed_has_no_502": 0,
        "broken_error_log_shows_resets": 7,
        "no_value": None,
        "raises": None,
    }
    assert judge(lab, results)[0].to_dict()["value"] == 20
