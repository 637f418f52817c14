"""`lab run --live`: the engine serves each variant's dashboard while its load runs, and
the dashboard shows the client's side (Locust's requests/s) beside nginx's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

URL = re.compile(r"^live: keepalive-502 / fixed: (http://127\.0\.0\.1:\d+/)$", re.M)


def _state(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}live/state", timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.mark.lab
def test_run_live_serves_the_dashboard_with_client_rates(lab_env: dict, tmp_path: Path):
    argv = [sys.executable, "-m", "labs.engine.cli", "run", "keepalive-502",
            "--variant", "fixed", "--live", "--duration", "8", "--json",
            "--results-dir", str(tmp_path / "results")]  # fmt: skip
    run = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=lab_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.stderr is not None
    seen = ""
    deadline = time.monotonic() + 60
    while not (found := URL.search(seen)) and time.monotonic() < deadline:
        line = run.stderr.readline()
        if not line:
            break
        seen += line
    assert found, f"no dashboard URL on stderr: {seen[-500:]}"
    assert "keepalive-502: checks not judged: the load was shortened to 8 s" in seen, (
        "the note on the shortened load comes once the run can start, before its dashboard"
    )
    url = found[1]
    rates: list[dict] = []
    while time.monotonic() < deadline and run.poll() is None:
        state = _state(url)
        rates = [p["client"] for p in (state or {}).get("points", []) if p.get("client")]
        if any((r.get("ok") or 0) > 0 for r in rates):
            break
        time.sleep(0.5)
    out, _ = run.communicate(timeout=90)
    assert any((r.get("ok") or 0) > 0 for r in rates), f"no client rate: {rates}"
    assert run.returncode in (0, 1), out[-500:]  # shortened: checks not judged, still a run
    assert json.loads(out)["variants"]["fixed"]["requests"] > 0
    assert _state(url) is None, "the dashboard outlived its variant"
