"""Counterfactual judging: every check is re-judged on its variants' twins' numbers,
and one that still passes there is a defect that fails the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model.catalog import all_labs
from labs.engine.model.checks import status_absent, status_at_least
from labs.engine.model.spec import Check, Lab, LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.model.verdicts import all_ok, judge
from labs.engine.reporting import report

BASE = Variant(
    name="broken",
    summary="s",
    nginx=NginxSpec(),
    services=(ServiceSpec(),),
    load=LoadSpec("synchronized_bursts.py", users=1, spawn_rate=1, duration_s=5),
    twin="fixed",
)
FIXED = replace(BASE, name="fixed", twin="broken")


def result(name: str, statuses: list[int]) -> VariantResult:
    return summarize(name, [Request(1000.0 + i, "POST /", s, 5.0) for i, s in enumerate(statuses)])


def lab_with(*checks: Check, variants: tuple[Variant, ...] = (BASE, FIXED)) -> Lab:
    return Lab("t", "t", "t", guide=Path("guide.md"), variants=variants, checks=checks)


RESULTS = {
    "broken": result("broken", [502] * 20 + [200] * 80),
    "fixed": result("fixed", [200] * 100),
}


def test_a_check_that_fails_on_the_twins_numbers_is_proven():
    lab = lab_with(status_at_least("broken", 502, count=10), status_absent("fixed", 502, 50))
    checks = judge(lab, RESULTS)
    assert [(c.passed, c.proof, c.fails_without_fix) for c in checks] == [
        (True, "proven", True)
    ] * 2
    assert checks[1].proof_detail.startswith("[fixed <- broken] fixed: 20 of 100 were 502")
    assert all_ok(checks)


def test_a_check_that_passes_without_its_fix_is_a_defect_and_fails_the_run():
    # "at most 1000 502s" holds for the broken numbers too: it proves nothing.
    lax = Check("fixed_is_fine", lambda r: (r["fixed"].count(502) <= 1000, "lax"), ("fixed",))
    (check,) = judge(lab_with(lax), RESULTS)
    assert check.passed and check.proof == "defect" and check.fails_without_fix is False
    assert check.verdict == "DEFECT" and not check.ok and not all_ok([check])
    assert "without its fix it still passes" in check.line("t")


def test_twins_are_swapped_together_and_a_check_may_name_its_own():
    seen: list[tuple[str, str]] = []

    def evaluate(r):
        seen.append((r["broken"].variant, r["fixed"].variant))
        return r["broken"].count(502) > r["fixed"].count(502), "compare"

    both = Check("compare", evaluate, ("broken", "fixed"))
    judge(lab_with(both), RESULTS)
    assert seen == [("broken", "fixed"), ("fixed", "broken")]
    other = replace(BASE, name="other", twin="", explore="x")
    results = {**RESULTS, "other": result("other", [200] * 100)}
    seen.clear()
    judge(lab_with(replace(both, twins={"fixed": "other"}), variants=(BASE, FIXED, other)), results)
    assert seen == [("broken", "fixed"), ("fixed", "other")]


def test_not_judged_when_a_variant_did_not_run_and_unproven_when_a_twin_did_not():
    lab = lab_with(status_at_least("broken", 502, count=10), status_absent("fixed", 502, 50))
    checks = judge(lab, {"broken": RESULTS["broken"]})
    assert checks[0].passed and checks[0].proof == "unproven"
    assert "twin fixed of broken did not run" in checks[0].proof_detail
    assert not checks[1].judged and not checks[1].passed and checks[1].verdict == "NOT JUDGED"
    assert all_ok(checks)  # a filtered run judges what ran; nothing is called PASS unjudged


def test_not_applicable_needs_a_reason_and_is_reported_as_such():
    pre = Check("load_ran", lambda r: (True, "ok"), (), not_applicable="a precondition")
    (check,) = judge(lab_with(pre, status_absent("fixed", 502, 50)), RESULTS)[:1]
    assert check.proof == "not_applicable" and check.fails_without_fix == "not_applicable"
    assert check.proof_detail == "a precondition"


def test_a_check_that_raises_on_the_twins_numbers_did_not_pass_there():
    def evaluate(r):
        return r["fixed"].extra["needed"] == 1, "needs a number"

    fixed = result("fixed", [200])
    fixed.extra["needed"] = 1
    (check,) = judge(lab_with(Check("c", evaluate, ("fixed",))), {**RESULTS, "fixed": fixed})
    assert check.passed and check.proof == "proven" and "KeyError" in check.proof_detail


def test_a_lab_that_cannot_prove_its_checks_is_refused():
    untwinned = replace(BASE, twin="")
    with pytest.raises(ValueError, match="no variant with a twin"):
        lab_with(status_absent("broken", 502, 1), variants=(untwinned,))
    with pytest.raises(ValueError, match="twin 'nope' is unknown"):
        lab_with(status_absent("broken", 502, 1), variants=(replace(BASE, twin="nope"), FIXED))
    lonely = replace(BASE, name="lonely", twin="")
    with pytest.raises(ValueError, match="no check judges variant lonely"):
        lab_with(status_absent("broken", 502, 1), variants=(BASE, FIXED, lonely))
    lab_with(status_absent("broken", 502, 1), variants=(BASE, FIXED, replace(lonely, explore="x")))


def test_every_catalog_check_is_provable_or_says_why_not():
    for lab in all_labs():
        for check in lab.checks:
            twins = [lab.twin_of(check, v) for v in check.variants]
            assert any(twins) or check.not_applicable, f"{lab.name}/{check.name}"
        exempt = [c.name for c in lab.checks if c.not_applicable]
        assert len(exempt) <= 2, f"{lab.name}: too many not_applicable checks: {exempt}"


def test_results_json_and_report_md_carry_the_proof(tmp_path):
    lax = Check("fixed_is_fine", lambda r: (True, "lax"), ("fixed",))
    lab = lab_with(status_at_least("broken", 502, count=10), lax)
    checks = judge(lab, RESULTS)
    document = report.results_document(lab, RESULTS, checks, tmp_path)
    assert document["passed"] is False
    entries = json.loads(json.dumps(document))["checks"]
    assert [(c["name"], c["fails_without_fix"]) for c in entries] == [
        ("broken_reproduces_502", True),
        ("fixed_is_fine", False),
    ]
    text = report.markdown(document, lab)
    assert "**DEFECT** `fixed_is_fine`" in text and "fails without its fix: NO" in text


def test_a_shortened_run_is_not_judged_and_a_cancelled_fault_is_refused():
    from labs.engine.errors import LabError
    from labs.engine.model.spec import FaultStep
    from labs.engine.runner import shortened

    assert shortened([BASE], None) == "" and shortened([BASE], 5) == ""
    assert shortened([BASE], 3) == (
        "not judged: the load was shortened to 3 s, and the checks are tuned for 5 s"
    )
    checks = judge(lab_with(status_absent("fixed", 502, 50)), RESULTS, shortened([BASE], 3))
    assert [c.verdict for c in checks] == ["NOT JUDGED"] and all_ok(checks)
    faulty = replace(BASE, faults=(FaultStep(at_s=4, service="api", replica=1, action="kill"),))
    with pytest.raises(LabError, match="fault 'kill api-2' comes at 4 s; give more than 4 s"):
        shortened([faulty], 4)
