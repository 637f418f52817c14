"""Judging a run's checks, and proving that each one could fail without its fix.

Every variant that carries a fix names its unfixed twin, and every variant that must
reproduce a failure names its fixed twin (`Variant.twin`). After a run each check is
judged twice: on the measured results, and again with each of its variants' results
replaced by its twin's (all at once). A check that still passes under that substitution
would pass without the fix it claims to prove: it is reported as a defect, and the run
fails. This costs no extra load: the twins ran in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.spec import Check, Lab

Proof = Literal["proven", "defect", "not_applicable", "unproven"]
"""proven: the check fails on the twins' results; defect: it passes there too;
not_applicable: it compares no fix (the reason is in `proof_detail`); unproven: a twin
did not run (a run filtered with --variant)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    judged: bool = True
    """False when a variant the check needs did not run (`passed` is then False)."""
    proof: Proof = "unproven"
    proof_detail: str = ""
    """The check's detail on the twins' results, the not-applicable reason, or why the
    proof could not be made."""
    value: float | None = None
    """The number the check judged on the measured results (`Check.measure`), or None when
    the check reports none or it could not be measured."""

    @property
    def fails_without_fix(self) -> bool | str | None:
        """As results.json reports it: true, false, "not_applicable", or null (unproven)."""
        return {"proven": True, "defect": False, "not_applicable": "not_applicable"}.get(self.proof)

    @property
    def ok(self) -> bool:
        """Counts towards a passing run: passed and provable, or not judged at all."""
        return not self.judged or (self.passed and self.proof != "defect")

    @property
    def verdict(self) -> str:
        """PASS, FAIL, DEFECT (passes, but would pass without its fix too) or NOT JUDGED."""
        if not self.judged:
            return "NOT JUDGED"
        if not self.passed:
            return "FAIL"
        return "DEFECT" if self.proof == "defect" else "PASS"

    def line(self, lab: str) -> str:
        """One line for a terminal: the verdict, the check and the grader's detail."""
        text = f"{self.verdict} {lab}/{self.name}: {self.detail}"
        if self.proof == "defect":
            text += f" | without its fix it still passes: {self.proof_detail}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "judged": self.judged,
            "verdict": self.verdict,
            "detail": self.detail,
            "fails_without_fix": self.fails_without_fix,
            "without_fix": self.proof_detail,
            "value": self.value,
        }


def _evaluate(check: Check, results: Mapping[str, VariantResult]) -> tuple[bool, str]:
    """A check's verdict; a check that raises on these numbers did not pass."""
    try:
        return check.evaluate(results)
    except (ArithmeticError, KeyError, LookupError, TypeError, ValueError) as exc:
        return False, f"could not be judged: {type(exc).__name__}: {exc}"


def _measure(check: Check, results: Mapping[str, VariantResult]) -> float | None:
    """The number a check judges, or None (it reports none, or cannot on these numbers)."""
    if check.measure is None:
        return None
    try:
        value = float(check.measure(results))
    except (ArithmeticError, KeyError, LookupError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def twin_results(
    lab: Lab, check: Check, results: Mapping[str, VariantResult]
) -> dict[str, VariantResult] | str:
    """`results` with each of the check's variants replaced by its twin's result, or why
    that cannot be done."""
    swapped = dict(results)
    for name in check.variants:
        twin = lab.twin_of(check, name)
        if not twin:
            continue
        if twin not in results:
            return f"twin {twin} of {name} did not run"
        swapped[name] = results[twin]
    return swapped


def swap_label(lab: Lab, check: Check) -> str:
    """ "fixed <- broken, ..." : whose numbers stood in for whose."""
    pairs = ((name, lab.twin_of(check, name)) for name in check.variants)
    return ", ".join(f"{name} <- {twin}" for name, twin in pairs if twin)


def judge_check(lab: Lab, check: Check, results: Mapping[str, VariantResult]) -> CheckResult:
    missing = [name for name in check.variants if name not in results]
    if missing:
        reason = f"not judged: {', '.join(missing)} did not run"
        return CheckResult(check.name, False, reason, judged=False, proof_detail=reason)
    passed, detail = _evaluate(check, results)
    value = _measure(check, results)
    if check.not_applicable:
        return CheckResult(check.name, passed, detail, proof="not_applicable",
                           proof_detail=check.not_applicable, value=value)  # fmt: skip
    swapped = twin_results(lab, check, results)
    if isinstance(swapped, str):
        return CheckResult(check.name, passed, detail, proof="unproven", proof_detail=swapped,
                           value=value)  # fmt: skip
    still_passes, twin_detail = _evaluate(check, swapped)
    proof: Proof = "defect" if still_passes else "proven"
    shown = f"[{swap_label(lab, check)}] {twin_detail}"
    return CheckResult(check.name, passed, detail, proof=proof, proof_detail=shown, value=value)


def judge(lab: Lab, results: Mapping[str, VariantResult], unjudged: str = "") -> list[CheckResult]:
    """Every check of the lab; `unjudged`: why none can be judged on this run (e.g. its load
    was shortened below what the checks are tuned for)."""
    if unjudged:
        return [
            CheckResult(c.name, False, unjudged, judged=False, proof_detail=unjudged)
            for c in lab.checks
        ]
    return [judge_check(lab, check, results) for check in lab.checks]


def all_ok(checks: list[CheckResult]) -> bool:
    return all(check.ok for check in checks)
