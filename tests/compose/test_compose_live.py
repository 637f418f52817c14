"""`lab fault` and the live dashboard on the compose topology: the same control
endpoint and collector as the local topology (nginx's logs read inside its container)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.compose.conftest import resources_of
from tests.conftest import run_lab_cli

pytestmark = pytest.mark.compose


def get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started


def live_state(dashboard: str) -> dict:
    with urllib.request.urlopen(f"{dashboard}live/state", timeout=5) as response:
        return json.loads(response.read())


def wait_for_state(dashboard: str, predicate, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = live_state(dashboard)
        if predicate(state):
            return state
        time.sleep(0.3)
    pytest.fail(f"never: {json.dumps(state['points'][-3:])[:1500]}")


def test_fault_and_dashboard_on_compose(lab_env, docker_client):
    up = run_lab_cli(
        "up", "keepalive-502", "--variant", "fixed", "--topology", "compose",
        env=lab_env, timeout=180,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
    try:
        nginx, dashboard = status["endpoints"]["nginx"] + "/work", status["dashboard"]
        assert run_lab_cli("fault", "api", "latency_ms=200", env=lab_env).returncode == 0
        for _ in range(5):
            code, took = get(nginx)
            assert code == 200 and took >= 0.2
        state = wait_for_state(
            dashboard,
            lambda s: (
                sum(p["requests"] for p in s["points"]) >= 5
                and s["points"][-1]["nodes"]["api-1"] == "slow"
            ),
        )
        assert state["nginx_logs"] and [e["label"] for e in state["events"]] == [
            "api latency_ms=200"
        ]
        assert any((p["p50_ms"] or 0) >= 200 for p in state["points"])
        assert run_lab_cli("fault", "api-1", "--kill", env=lab_env).returncode == 0
        wait_for_state(dashboard, lambda s: s["points"][-1]["nodes"]["api-1"] == "down")
        assert run_lab_cli("fault", "api-1", "--start", env=lab_env).returncode == 0
        assert get(nginx)[0] == 200
        bad = run_lab_cli("fault", "api-3", "--kill", env=lab_env)
        assert bad.returncode == 2 and "no replica api-3" in bad.stderr
    finally:
        assert run_lab_cli("down", env=lab_env, timeout=120).returncode == 0
    assert not resources_of(docker_client, int(status["run_id"].rsplit("-", 1)[1]))
