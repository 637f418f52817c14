"""Run-state files: written whole, and the one holding the control token is private."""

from __future__ import annotations

import stat
from pathlib import Path

from labs.engine.runtime.state import read_json, write_json_atomic


def test_private_state_file_is_readable_by_its_owner_only(tmp_path: Path):
    path = tmp_path / "up.json"
    write_json_atomic(path, {"control": {"token": "secret"}}, private=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_json(path) == {"control": {"token": "secret"}}


def test_state_file_is_replaced_whole(tmp_path: Path):
    path = tmp_path / "run.json"
    write_json_atomic(path, {"n": 1})
    write_json_atomic(path, {"n": 2})
    assert read_json(path) == {"n": 2}
    assert stat.S_IMODE(path.stat().st_mode) & 0o002 == 0  # not world-writable
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left
