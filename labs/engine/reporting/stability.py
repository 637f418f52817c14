"""`lab check LAB --repeat N`: how stable each check is over N runs of its lab.

Per check: in how many runs it passed (verdict PASS: judged, passed, and failing
without its fix), and the band of the number it judges (`CheckResult.value`:
min / median / max over the runs that reported one; None, shown as n/a, for a check
that reports no value).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from labs.engine.model.verdicts import CheckResult

MAX_REPEAT = 50


@dataclass(frozen=True)
class Stability:
    name: str
    verdicts: tuple[str, ...]
    """One per run, in run order: PASS, FAIL, DEFECT or NOT JUDGED."""
    values: tuple[float | None, ...]
    """The judged number per run (None: not reported in that run)."""

    @property
    def runs(self) -> int:
        return len(self.verdicts)

    @property
    def passed(self) -> int:
        return sum(v == "PASS" for v in self.verdicts)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    @property
    def stable(self) -> bool:
        """Passed every run."""
        return self.runs > 0 and self.passed == self.runs

    def _reported(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def min(self) -> float | None:
        return min(self._reported(), default=None)

    @property
    def median(self) -> float | None:
        reported = self._reported()
        return statistics.median(reported) if reported else None

    @property
    def max(self) -> float | None:
        return max(self._reported(), default=None)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "runs": self.runs,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "verdicts": list(self.verdicts),
            "values": list(self.values),
            "min": self.min,
            "median": self.median,
            "max": self.max,
        }

    def line(self, lab: str) -> str:
        """'10/10 (100 %) keepalive-502/broken_reproduces_502: min 12 / median 30 / max 41'."""
        band = (
            "n/a"
            if self.median is None
            else f"min {fmt(self.min)} / median {fmt(self.median)} / max {fmt(self.max)}"
        )
        return f"{self.passed}/{self.runs} ({100 * self.pass_rate:.0f} %) {lab}/{self.name}: {band}"


def fmt(value: float | None) -> str:
    """3 significant digits, no exponent from 0.0001 up: 0.0017, 5.6, 713, 2340."""
    if value is None:
        return "n/a"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def summarize(runs: Sequence[Sequence[CheckResult]]) -> list[Stability]:
    """Per check (in the order they first appear), its verdict and value in every run; a
    check missing from a run counts as NOT JUDGED there."""
    names: list[str] = []
    for checks in runs:
        names += [c.name for c in checks if c.name not in names]
    summary = []
    for name in names:
        verdicts: list[str] = []
        values: list[float | None] = []
        for checks in runs:
            found = next((c for c in checks if c.name == name), None)
            verdicts.append(found.verdict if found else "NOT JUDGED")
            values.append(found.value if found else None)
        summary.append(Stability(name, tuple(verdicts), tuple(values)))
    return summary


def lab_document(
    lab: str, runs: Sequence[Sequence[CheckResult]], results_dirs: Sequence[str] = ()
) -> dict[str, object]:
    """One lab's part of the `--repeat --json` document; `passed`: every check passed in
    every run."""
    checks = summarize(runs)
    return {
        "lab": lab,
        "runs": len(runs),
        "passed": all(c.stable for c in checks),
        "results_dirs": list(results_dirs),
        "checks": [c.to_dict() for c in checks],
    }


def repeat_count(text: str) -> int:
    """--repeat's value: a whole number from 1 to MAX_REPEAT (argparse shows the reason)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of runs: {text!r}") from None
    if not 1 <= value <= MAX_REPEAT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_REPEAT} runs, got {value}")
    return value
