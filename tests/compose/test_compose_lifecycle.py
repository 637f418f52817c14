"""The compose topology leaves nothing behind and exposes nothing beyond 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

import pytest

from labs.engine.topology.dockerenv import RUN_LABEL
from tests.compose.conftest import resources_of
from tests.conftest import LAB, REPO_ROOT, run_lab_cli

pytestmark = pytest.mark.compose


def wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def start_run(lab_env, tmp_path, duration: str = "20") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LAB, "run", "keepalive-502", "--topology", "compose", "--variant", "fixed",
         "--duration", duration, "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=lab_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_finished_run_leaves_no_containers_or_networks(lab_env, tmp_path, docker_client):
    runner = start_run(lab_env, tmp_path, duration="3")
    try:
        assert wait_for(lambda: resources_of(docker_client, runner.pid), 60), "never started"
        _, stderr = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode in (0, 1), stderr  # 1: too few requests for a 3 s check
    assert resources_of(docker_client, runner.pid) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_removes_its_containers(lab_env, tmp_path, docker_client, sig, code):
    runner = start_run(lab_env, tmp_path)
    try:
        assert wait_for(lambda: len(resources_of(docker_client, runner.pid)) >= 3, 60), (
            "containers and network never appeared"
        )
        time.sleep(1.0)
        runner.send_signal(sig)
        _, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == code, stderr
    assert "Traceback" not in stderr
    assert resources_of(docker_client, runner.pid) == []


def test_sigkilled_run_is_swept_by_lab_down(lab_env, tmp_path, docker_client):
    runner = start_run(lab_env, tmp_path)
    try:
        assert wait_for(lambda: len(resources_of(docker_client, runner.pid)) >= 3, 60)
    finally:
        runner.kill()
        runner.wait(timeout=10)
    assert resources_of(docker_client, runner.pid), "containers outlive a SIGKILLed runner"
    down = run_lab_cli("down", env=lab_env, timeout=60)
    assert down.returncode == 0, down.stderr
    assert resources_of(docker_client, runner.pid) == []


def test_up_publishes_on_loopback_only_and_down_removes_everything(lab_env, docker_client):
    up = run_lab_cli(
        "up", "keepalive-502", "--variant", "broken", "--topology", "compose",
        env=lab_env, timeout=180,
    )  # fmt: skip
    run_id = ""
    try:
        assert up.returncode == 0, up.stderr
        status = json.loads(run_lab_cli("status", "--json", env=lab_env).stdout)
        assert status["up"] and status["topology"] == "compose"
        run_id = status["run_id"]
        containers = docker_client.containers.list(filters={"label": f"{RUN_LABEL}={run_id}"})
        assert {c.labels["com.docker.compose.service"] for c in containers} == {"nginx", "api-1"}
        for container in containers:
            bindings = [
                binding
                for port_bindings in container.attrs["NetworkSettings"]["Ports"].values()
                for binding in port_bindings or ()
            ]
            assert bindings, f"{container.name} publishes a port"
            assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}, container.name
            assert container.attrs["Config"]["User"] == "10001:10001", "not root"
            assert container.attrs["Config"].get("Healthcheck"), f"{container.name} healthcheck"
        nginx_url = status["endpoints"]["nginx"]
        assert nginx_url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(f"{nginx_url}/work", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["X-Replica"] == "api-1"
    finally:
        down = run_lab_cli("down", env=lab_env, timeout=60)
    assert down.returncode == 0, down.stderr
    assert docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []
    assert docker_client.networks.list(filters={"label": f"{RUN_LABEL}={run_id}"}) == []
