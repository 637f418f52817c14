"""Nothing the runner starts outlives it: interrupted runs and `lab up` / `lab down`."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from labs.engine.runtime.processes import pid_alive, processes_with_run_id
from tests.conftest import LAB, REPO_ROOT, run_lab_cli


def run_ids_of(runner_pid: int) -> set[str]:
    """LAB_RUN_IDs of live processes started by the runner with this pid."""
    ids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            ours = item.startswith(b"LAB_RUN_ID=") and item.endswith(f"-{runner_pid}".encode())
            if ours and pid_alive(int(entry.name)):
                ids.add(item.split(b"=", 1)[1].decode())
    return ids


def wait_for(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def process_names(run_id: str) -> list[str]:
    names = []
    for pid in processes_with_run_id(run_id):
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return names


MOMENTS = {
    # the first child of the run exists: topologies are still starting
    "startup": lambda ids: bool(ids),
    # Locust is driving load
    "load": lambda ids: any("locust" in name for i in ids for name in process_names(i)),
}


def start_and_interrupt_at(moment: str, lab_env, results: Path, seed: int) -> tuple:
    """Start `lab run`, wait for `moment` plus a seeded random 0-0.5 s, return (runner, run id)."""
    runner = subprocess.Popen(
        [*LAB, "run", "keepalive-502", "--duration", "30", "--results-dir", str(results)],
        cwd=REPO_ROOT, env=lab_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reached = wait_for(lambda: MOMENTS[moment](run_ids_of(runner.pid)), timeout=30, interval=0.02)
    ids = run_ids_of(runner.pid)
    if not reached or len(ids) != 1:
        runner.kill()
        pytest.fail(f"run never reached {moment}: {ids}")
    time.sleep(random.Random(seed).uniform(0, 0.5))
    return runner, ids.pop()


def assert_nothing_left(run_id: str, lab_env) -> None:
    assert wait_for(lambda: not processes_with_run_id(run_id), timeout=10), process_names(run_id)
    assert not list(Path(tempfile.gettempdir()).glob(f"lab-{run_id}-*")), "temp prefix left"


@pytest.mark.parametrize("moment", sorted(MOMENTS))
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_leaves_nothing_behind(lab_env, tmp_path, sig, code, moment):
    runner, run_id = start_and_interrupt_at(moment, lab_env, tmp_path, seed=sig + len(moment))
    try:
        runner.send_signal(sig)
        sent = time.monotonic()
        _, stderr = runner.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    # It says what it stops, in one line, and stops it all at once (within the 2 s
    # interrupt grace, plus the unwinding), not one process after another.
    stopping = [line for line in stderr.splitlines() if line.startswith("lab: stopping: ")]
    assert len(stopping) == 1, stderr
    if moment == "load":
        assert "locust" in stopping[0] and "nginx" in stopping[0] and "api" in stopping[0]
    assert took < 6, f"took {took:.1f} s to stop"
    assert_nothing_left(run_id, lab_env)
    assert not list((Path(lab_env["LAB_STATE_DIR"]) / "runs").glob("*.json"))


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_killed_run_is_cleaned_up_by_the_next_lab_down(lab_env, tmp_path, moment):
    """SIGKILL leaves the runner no chance to clean up: its children die with it (the
    kernel's parent-death signal; a zombie counts as gone), and the next `lab down`
    removes what is left on disk."""
    runner, run_id = start_and_interrupt_at(moment, lab_env, tmp_path, seed=len(moment))
    runner.kill()
    runner.communicate(timeout=10)
    gone = wait_for(lambda: not processes_with_run_id(run_id), timeout=10)
    assert gone, f"outlived the killed runner: {process_names(run_id)}"
    down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0
    assert f"cleaned up after interrupted run {run_id}" in down.stdout
    assert_nothing_left(run_id, lab_env)


def test_up_status_curl_down(lab_env):
    up = run_lab_cli("up", "keepalive-502", "--variant", "broken", env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
        assert status["up"] is True and status["variant"] == "broken"
        nginx_url = status["endpoints"]["nginx"]
        assert nginx_url.startswith("http://127.0.0.1:")
        assert (
            nginx_url in up.stdout and "locust" in up.stdout and "--web-host 127.0.0.1" in up.stdout
        )
        with urllib.request.urlopen(f"{nginx_url}/work", timeout=5) as response:
            assert response.status == 200
            assert response.headers["X-Replica"] == "api-1"
        for hidden in ("/admin/faults", "/metrics"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(f"{nginx_url}{hidden}", timeout=5)
            assert denied.value.code == 404
        api_url = status["endpoints"]["services"]["api"][0]
        with urllib.request.urlopen(f"{api_url}/admin/faults", timeout=5) as response:
            assert response.status == 200, "the admin endpoint is on the api itself"
        second = run_lab_cli("up", "keepalive-502", env=lab_env)
        assert second.returncode == 2 and "already up" in second.stderr
    finally:
        down = run_lab_cli("down", env=lab_env)
    assert down.returncode == 0 and "stopped keepalive-502/broken" in down.stdout
    assert not processes_with_run_id(status["run_id"])
    assert not pid_alive(status["pid"])
    assert json.loads(run_lab_cli("status", "--json", env=lab_env).stdout) == {"up": False}


@pytest.mark.parametrize(
    "lab, variant, parts",
    [("keepalive-502", "broken", ["api-1"]), ("rate-limit", "redis", ["redis", "api-1", "api-3"])],
)
def test_status_lists_every_log_file_of_what_is_up(lab_env, lab, variant, parts):
    up = run_lab_cli("up", lab, "--variant", variant, env=lab_env, timeout=60)
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
        files = status["log_files"]
        for name in ["nginx-error", "nginx-access", "nginx-output", *parts, "supervisor"]:
            assert name in files, sorted(files)
        for name, path in files.items():
            assert Path(path).is_absolute() and Path(path).is_file(), (name, path)
        text = run_lab_cli("status", env=lab_env).stdout
        assert all(f"{name}:" in text and path in text for name, path in files.items()), text
        # The live logs: a request through nginx shows up in the access log at once.
        access = run_lab_cli("status", "--log", "nginx-access", env=lab_env)
        assert access.returncode == 0 and access.stdout == files["nginx-access"] + "\n"
        with urllib.request.urlopen(f"{status['endpoints']['nginx']}/work?seen", timeout=5):
            pass
        assert wait_for(lambda: "/work" in Path(files["nginx-access"]).read_text(), timeout=5)
        unknown = run_lab_cli("status", "--log", "nope", env=lab_env)
        assert unknown.returncode == 2 and "known: nginx-error, nginx-access" in unknown.stderr
    finally:
        assert run_lab_cli("down", env=lab_env).returncode == 0
    nothing = run_lab_cli("status", "--log", "nginx-error", env=lab_env)
    assert nothing.returncode == 2 and "nothing is up" in nothing.stderr
