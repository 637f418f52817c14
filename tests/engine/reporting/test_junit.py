"""`lab check --junit FILE`: one testsuite per lab run, one testcase per check, the grader's
detail as the failure message; parsed back and asserted on."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.model.verdicts import CheckResult
from labs.engine.reporting import junit

PASS = CheckResult("fixed_has_no_502", True, "fixed: 0 of 700 were 502", proof="proven")
FAIL = CheckResult("broken_reproduces_502", False, "broken: 3 of 700 were 502, expected >= 10")
DEFECT = CheckResult(
    "fixed_is_fine", True, "lax", proof="defect", proof_detail="[fixed <- broken] lax"
)
SKIPPED = CheckResult("masked_has_no_502", False, "not judged: masked did not run", judged=False)


def parse(runs: list[junit.LabRun]) -> ET.Element:
    data = junit.render(runs)
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(data)


def test_one_testsuite_per_lab_one_testcase_per_check():
    root = parse(
        [
            junit.LabRun("keepalive-502", [PASS, FAIL, DEFECT, SKIPPED], 61.25, "results/k/1"),
            junit.LabRun("retries", [PASS], 120.5, timestamp="2024-05-01T12:00:00"),
        ]
    )
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "5", "failures": "2", "errors": "0", "skipped": "1", "time": "181.750",
    }  # fmt: skip
    first, second = root.findall("testsuite")
    attributes = ("name", "tests", "failures", "skipped", "time")
    assert [first.get(k) for k in attributes] == ["keepalive-502", "4", "2", "1", "61.250"]
    assert first.find("properties/property[@name='results_dir']").get("value") == "results/k/1"
    assert second.get("timestamp") == "2024-05-01T12:00:00" and second.find("properties") is None
    cases = first.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("keepalive-502", "fixed_has_no_502"),
        ("keepalive-502", "broken_reproduces_502"),
        ("keepalive-502", "fixed_is_fine"),
        ("keepalive-502", "masked_has_no_502"),
    ]
    assert all(c.get("time") is not None for c in cases)


def test_verdicts_map_to_failure_skipped_and_pass():
    root = parse([junit.LabRun("k", [PASS, FAIL, DEFECT, SKIPPED], 1.0)])
    passed, failed, defect, skipped = root.findall("testsuite/testcase")

    assert passed.find("failure") is None and passed.find("skipped") is None
    assert passed.find("system-out").text == "fixed: 0 of 700 were 502"

    failure = failed.find("failure")
    assert failure.get("type") == "FAIL"
    assert failure.get("message") == "broken: 3 of 700 were 502, expected >= 10"
    assert failure.text == failure.get("message")

    failure = defect.find("failure")
    assert failure.get("type") == "DEFECT"
    assert failure.get("message") == "lax | without its fix it still passes: [fixed <- broken] lax"

    assert skipped.find("failure") is None
    assert skipped.find("skipped").get("message") == "not judged: masked did not run"


def test_repeated_runs_get_their_own_suite_names():
    runs = [junit.LabRun("k", [PASS], 1.0, suite=f"k run {n}/2") for n in (1, 2)]
    names = [s.get("name") for s in parse(runs).findall("testsuite")]
    assert names == ["k run 1/2", "k run 2/2"]
    assert {c.get("classname") for c in parse(runs).iter("testcase")} == {"k"}


def test_details_that_xml_cannot_carry_are_replaced_not_written_raw():
    odd = CheckResult("odd", False, 'a <b> & "c"\n\x00\x1b[31m\ud800 done')
    (case,) = parse([junit.LabRun("k", [odd], 0.0)]).iter("testcase")
    message = case.find("failure").get("message")
    assert message == 'a <b> & "c"\n\ufffd\ufffd[31m\ufffd done'


def test_no_runs_is_still_a_valid_document():
    root = parse([])
    assert root.tag == "testsuites" and root.get("tests") == "0" and not list(root)


def test_write_is_atomic_and_creates_the_folder(tmp_path: Path):
    path = tmp_path / "results" / "junit.xml"
    junit.ensure_writable(path)
    assert path.parent.is_dir() and not list(path.parent.iterdir()), "the probe is removed"
    junit.write(path, [junit.LabRun("k", [PASS], 1.0)])
    assert ET.parse(path).getroot().get("tests") == "1"
    assert [p.name for p in path.parent.iterdir()] == ["junit.xml"], "no temporary file left"


def test_an_unwritable_place_is_refused_before_anything_runs(tmp_path: Path):
    with pytest.raises(LabError, match="is a directory"):
        junit.ensure_writable(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LabError, match="cannot write --junit"):
        junit.ensure_writable(blocker / "junit.xml")
