"""`lab check --junit FILE`: the checks as JUnit XML, the report format CI systems show.

One <testsuite> per lab run (its run time as `time`), one <testcase> per check
(classname = the lab, name = the check). FAIL and DEFECT are <failure>s whose message is
the grader's detail (a DEFECT's adds what the check measured without its fix); NOT JUDGED
is <skipped>; a PASS keeps its detail in <system-out>, so the numbers show either way.
"""

from __future__ import annotations

import contextlib
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.verdicts import CheckResult

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all, even escaped (ElementTree writes them raw)."""


@dataclass(frozen=True)
class LabRun:
    """One lab's run, as the JUnit file needs it."""

    lab: str
    checks: Sequence[CheckResult]
    seconds: float
    results_dir: str = ""
    timestamp: str = ""
    """When the run started, ISO 8601 (e.g. 2024-05-01T12:00:00); omitted when empty."""
    suite: str = ""
    """The testsuite's name (default: the lab; `--repeat` adds the run number)."""


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _message(check: CheckResult) -> str:
    """The grader's detail; for a DEFECT also what it measured on its twins' numbers."""
    if check.verdict == "DEFECT":
        return f"{check.detail} | without its fix it still passes: {check.proof_detail}"
    return check.detail


def _testcase(parent: ET.Element, run: LabRun, check: CheckResult) -> str:
    case = ET.SubElement(
        parent, "testcase", classname=_text(run.lab), name=_text(check.name), time="0.000"
    )
    verdict = check.verdict
    message = _text(_message(check))
    if verdict in ("FAIL", "DEFECT"):
        failure = ET.SubElement(case, "failure", message=message, type=verdict)
        failure.text = message
    elif verdict == "NOT JUDGED":
        ET.SubElement(case, "skipped", message=message)
    else:
        ET.SubElement(case, "system-out").text = message
    return verdict


def render(runs: Sequence[LabRun]) -> bytes:
    """The JUnit XML document (UTF-8, with an XML declaration) for these lab runs."""
    root = ET.Element("testsuites", name="lab check")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    total_time = 0.0
    for run in runs:
        suite = ET.Element("testsuite", name=_text(run.suite or run.lab))
        if run.timestamp:
            suite.set("timestamp", run.timestamp)
        if run.results_dir:
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(properties, "property", name="results_dir", value=_text(run.results_dir))
        verdicts = [_testcase(suite, run, check) for check in run.checks]
        counts = {
            "tests": len(verdicts),
            "failures": sum(v in ("FAIL", "DEFECT") for v in verdicts),
            "skipped": sum(v == "NOT JUDGED" for v in verdicts),
        }
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
        suite.set("time", f"{run.seconds:.3f}")
        total_time += run.seconds
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def ensure_writable(path: Path) -> None:
    """Before any lab runs: the file's folder exists (created if need be) and a file can be
    written there, so a long run does not end in "cannot write"."""
    if path.is_dir():
        raise LabError(f"--junit {path}: is a directory, give a file name")
    probe = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")  # the very file write() renames into place
        probe.unlink()
    except OSError as exc:
        raise LabError(f"cannot write --junit {path}: {exc.strerror}") from None


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write(path: Path, runs: Sequence[LabRun]) -> None:
    """Atomically: a temporary file in the same folder, then renamed over `path`."""
    data = render(runs)
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise LabError(f"cannot write --junit {path}: {exc.strerror}") from None
