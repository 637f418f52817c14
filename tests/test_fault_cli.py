"""`lab fault` on what `lab up` keeps running: settings through the api's fault switch,
seen through nginx; kill and start through the supervisor; bad input is one line and
exit status 2; `lab down` leaves nothing."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from labs.engine.runtime.processes import pid_alive, processes_with_run_id
from tests.conftest import run_lab_cli


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


def fault(env, *args: str):
    return run_lab_cli("fault", *args, env=env, timeout=60)


def assert_one_line_error(result, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("lab: error: ", "lab fault: error: ")), (
        result.stderr
    )
    for word in words:
        assert word in lines[0], lines[0]


def test_fault_settings_kill_start_clear_on_lab_up(lab_env):
    up = run_lab_cli("up", "keepalive-502", "--variant", "fixed", env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    assert "lab fault api latency_ms=200" in up.stdout
    status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
    try:
        nginx = status["endpoints"]["nginx"] + "/work"
        assert status["control"]["url"].startswith("http://127.0.0.1:")
        assert timed_get(nginx)[1] < 0.18

        slow = fault(lab_env, "api", "latency_ms=200")
        assert slow.returncode == 0 and "latency_ms=200" in slow.stdout, slow.stderr
        code, took = timed_get(nginx)
        assert code == 200 and took >= 0.2, took

        # Bad input: one line each, exit 2, and nothing changed.
        assert_one_line_error(fault(lab_env, "api", "latency_ms=-5"), "latency_ms must be")
        assert_one_line_error(
            fault(lab_env, "api", "nope_ms=1"), "unknown fault setting", "nope_ms"
        )
        assert_one_line_error(fault(lab_env, "api", "latency_ms=fast"), "not a number")
        assert_one_line_error(fault(lab_env, "api-2", "latency_ms=1"), "no replica api-2", "api-1")
        assert_one_line_error(fault(lab_env, "payments", "--kill"), "unknown service", "api")
        assert_one_line_error(fault(lab_env, "api", "latency_ms=1", "--kill"), "no settings")
        assert_one_line_error(fault(lab_env, "api"), "KEY=VALUE")
        assert_one_line_error(fault(lab_env, "--clear", "--kill"), "not allowed with")
        assert_one_line_error(fault(lab_env, "api-1", "--start"), "no replica of it has stopped")
        assert_one_line_error(fault(lab_env, "api", "--move"), "cannot move api", "DNS name")
        assert timed_get(nginx)[1] >= 0.2, "a refused setting changed nothing"

        cleared = fault(lab_env, "--clear")
        assert cleared.returncode == 0 and "cleared: api-1" in cleared.stdout, cleared.stderr
        assert timed_get(nginx)[1] < 0.18

        killed = fault(lab_env, "api-1", "--kill")
        assert killed.returncode == 0 and "killed api-1" in killed.stdout, killed.stderr
        assert timed_get(nginx)[0] == 502
        assert_one_line_error(fault(lab_env, "api", "latency_ms=1"), "did not answer", "--start")
        started = fault(lab_env, "api-1", "--start")
        assert started.returncode == 0 and "started api-1" in started.stdout, started.stderr
        assert timed_get(nginx)[0] == 200
        stopped = fault(lab_env, "api-1", "--stop")
        assert stopped.returncode == 0 and "stopped api-1" in stopped.stdout, stopped.stderr
        assert timed_get(nginx)[0] == 502
        assert fault(lab_env, "api-1", "--start").returncode == 0
        assert timed_get(nginx)[0] == 200

        # The supervisor kept every event; the control endpoint needs the state file's token.
        with urllib.request.urlopen(f"{status['control']['url']}/control/events") as reply:
            events = json.loads(reply.read())["events"]
        actions = ["settings", "clear", "kill", "start", "stop", "start"]
        assert [e["action"] for e in events] == actions
        forged = urllib.request.Request(
            f"{status['control']['url']}/control/fault", data=b'{"action": "clear"}',
            method="POST",
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(forged, timeout=5)
        assert denied.value.code == 403
    finally:
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert not processes_with_run_id(status["run_id"])
    assert not pid_alive(status["pid"])
    nothing = fault(lab_env, "--clear")
    assert_one_line_error(nothing, "nothing is up")


@pytest.mark.lab  # the dns part: root and dnsmasq
def test_move_strands_a_resolve_once_nginx_until_a_reload(lab_env):
    """stale-dns by hand: `lab fault api --move` re-homes the api (a real dnsmasq answers
    its new address), nginx keeps the old one and fails; `lab fault --reload` fixes it."""
    up = run_lab_cli("up", "stale-dns", "--variant", "resolve-once", env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
    try:
        nginx = status["endpoints"]["nginx"] + "/work"
        (before,) = status["endpoints"]["services"]["api"]
        assert timed_get(nginx)[0] == 200
        moved = fault(lab_env, "api", "--move")
        assert moved.returncode == 0 and "moved to a new address: api-1" in moved.stdout, (
            moved.stderr
        )
        after = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
        (now,) = after["endpoints"]["services"]["api"]
        assert now != before, "lab status shows the api's new address"
        assert [timed_get(nginx)[0] for _ in range(5)] == [502] * 5, "nginx holds the old one"
        reloaded = fault(lab_env, "--reload")
        assert reloaded.returncode == 0 and "reloaded nginx" in reloaded.stdout, reloaded.stderr
        deadline = time.monotonic() + 5
        while timed_get(nginx)[0] != 200:
            assert time.monotonic() < deadline, "nginx did not follow the move after a reload"
            time.sleep(0.2)
    finally:
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert not processes_with_run_id(status["run_id"])


def release_of(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.headers.get("X-Release", "")
    except urllib.error.HTTPError as error:
        return f"{error.headers.get('X-Release', '')} {error.code}"


@pytest.mark.lab
def test_a_rollout_by_hand_sends_traffic_to_v2_and_its_gate_rolls_back(lab_env):
    """deploys by hand: `lab fault --rollout` starts canary's controller in `lab up`;
    under the test's own requests v2 gets a share, fails 30 % of them, and the gate
    sends everything back to v1; events say so."""
    up = run_lab_cli("up", "deploys", "--variant", "canary", env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
    control = status["control"]["url"]
    try:
        nginx = status["endpoints"]["nginx"] + "/work"
        assert {release_of(nginx) for _ in range(20)} == {"v1"}, "v2 is down until a rollout"
        assert_one_line_error(fault(lab_env, "api", "--rollout"), "--rollout takes no")
        started = fault(lab_env, "--rollout")
        assert started.returncode == 0 and "rollout started" in started.stdout, started.stderr
        assert_one_line_error(fault(lab_env, "--rollout"), "already running")
        seen, deadline = set(), time.monotonic() + 30
        decisions: list[str] = []
        while not any(d.startswith("rollback") for d in decisions):
            assert time.monotonic() < deadline, f"no rollback in 30 s: {decisions}"
            seen |= {release_of(nginx) for _ in range(20)}
            with urllib.request.urlopen(f"{control}/control/events") as reply:
                events = json.loads(reply.read())["events"]
            decisions = [str(e["decision"]) for e in events if e.get("what") == "decision"]
        assert "v1" in seen and any(r.startswith("v2") for r in seen), seen
        time.sleep(0.5)  # the rollback's reload
        assert {release_of(nginx) for _ in range(40)} == {"v1"}, "everything back on v1"
    finally:
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert not processes_with_run_id(status["run_id"])
