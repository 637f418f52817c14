"""`lab show` quotes the stored stability of a lab's checks, says when and at which
commit they were measured, and whether the lab changed since (stability_store.py)."""

from __future__ import annotations

import pytest

from labs.engine.errors import LabError
from labs.engine.reporting import stability_store
from labs.engine.reporting.stability_store import Stored


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(stability_store, "STORE", tmp_path)
    return tmp_path


def record(mode: str, commit: str = "abc1234") -> Stored:
    checks = [
        {"name": "broken_reproduces_502", "runs": 10, "passed": 10, "min": 70, "median": 94.5,
         "max": 138},
        {"name": "no_number", "runs": 10, "passed": 9, "min": None, "median": None, "max": None},
    ]  # fmt: skip
    document = {"lab": "keepalive-502", "passed": False, "checks": checks}
    return Stored(mode, "keepalive-502", 10, commit, "2026-12-06 19:22", 420.0, document)


def test_each_mode_is_quoted_with_its_commit_or_said_to_be_missing(store, monkeypatch):
    monkeypatch.setattr(stability_store, "changed_since", lambda commit, lab: [])
    record("quiet").save()
    assert Stored.load("quiet", "keepalive-502") == record("quiet")
    assert stability_store.summary_lines("keepalive-502") == [
        "  quiet: 10 runs at abc1234, 2026-12-06 19:22",
        "    10/10 broken_reproduces_502: 70 / 94.5 / 138",
        "    9/10 no_number",
        "  busy: not measured yet",
        "  compose: not measured yet",
    ]


def test_a_stale_record_says_so_and_without_git_it_says_it_cannot_tell(store, monkeypatch):
    record("busy", commit="older").save()
    changed = {"older": ["labs/keepalive_502/lab.py", "services/api/app.py"]}
    monkeypatch.setattr(stability_store, "changed_since", lambda commit, lab: changed[commit])
    lines = stability_store.summary_lines("keepalive-502")
    assert "  busy: 10 runs at older, 2026-12-06 19:22; STALE: 2 source file(s) changed since" in (
        lines
    )

    def no_git(commit: str, lab: str) -> list[str]:
        raise LabError("git diff failed: not a git repository")

    monkeypatch.setattr(stability_store, "changed_since", no_git)
    (busy,) = [line for line in stability_store.summary_lines("keepalive-502") if "busy" in line]
    unknown = "; cannot tell whether it is stale (git diff failed: not a git repository)"
    assert busy.endswith(unknown)
