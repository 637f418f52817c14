"""Bad input gets one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import run_lab_cli


def assert_one_line_error(result, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert fragment in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "nope"], "unknown lab 'nope'"),
        (["show", "nope"], "unknown lab 'nope'"),
        (["run", "keepalive-502", "--variant", "nope"], "unknown variant 'nope'"),
        (["run", "keepalive-502", "--duration", "-5"], "must be >= 1"),
        (["run", "keepalive-502", "--duration", "2.5"], "must be whole seconds"),
        (["run", "keepalive-502", "--duration", "abc"], "not a number of seconds"),
        (["run", "keepalive-502", "--duration", "nan"], "must be >= 1"),
        (["check"], "name at least one lab, or --all"),
        (["check", "keepalive-502", "--all"], "not both"),
        (["check", "keepalive-502", "--repeat", "0"], "must be from 1 to 50 runs"),
        (["check", "keepalive-502", "--repeat", "x"], "not a whole number of runs"),
        (["check", "keepalive-502", "--junit", "tests"], "is a directory, give a file name"),
        # Shorter than the checks are tuned for: `lab check` refuses, before anything runs.
        (["check", "keepalive-502", "--duration", "5"], "shortened to 5 s, and the checks are"),
        (["check", "idempotency", "--duration", "5"], "judges every check: drop --duration"),
        # A fault that would never happen: refused for any command.
        (["run", "load-balancing", "--duration", "8"], "its fault 'kill api-4' comes at 10 s"),
        (["up", "keepalive-502", "--port", "99999"], "must be 1-65535"),
        (["up", "keepalive-502", "--variant", "nope"], "unknown variant 'nope'"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_input(lab_env, args, fragment):
    assert_one_line_error(run_lab_cli(*args, env=lab_env), fragment)


def test_missing_nginx(lab_env):
    env = {**lab_env, "LAB_NGINX": "/nonexistent/nginx"}
    assert_one_line_error(run_lab_cli("run", "keepalive-502", env=env), "nginx")
    assert_one_line_error(run_lab_cli("up", "keepalive-502", env=env), "nginx")
    # a shortened run's "not judged" note would come first: the missing part is all it says
    shortened = run_lab_cli("run", "idempotency", "--duration", "5", env=env)
    assert_one_line_error(shortened, "nginx")


def test_missing_docker_engine_is_the_only_line(lab_env):
    env = {**lab_env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = run_lab_cli("run", "idempotency", "--topology", "compose", "--duration", "5", env=env)
    assert_one_line_error(result, "no Docker engine answers")


def test_port_in_use(lab_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_lab_cli("up", "keepalive-502", "--port", str(port), env=lab_env)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use")
    assert "nothing is up" in run_lab_cli("status", env=lab_env).stdout


def test_unwritable_results_dir(lab_env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_lab_cli("run", "keepalive-502", "--results-dir", str(blocker), env=lab_env)
    assert_one_line_error(result, "cannot write results")


def test_list_and_show(lab_env):
    listing = run_lab_cli("list", env=lab_env)
    assert listing.returncode == 0
    assert "keepalive-502" in listing.stdout and "broken, fixed, masked" in listing.stdout
    guide = run_lab_cli("show", "keepalive-502", env=lab_env)
    assert guide.returncode == 0
    assert "keepalive_timeout" in guide.stdout
    stability = guide.stdout.split("How stable its checks are", 1)[1].splitlines()
    for mode in ("quiet", "busy", "compose"):
        assert any(line.startswith(f"  {mode}: ") for line in stability), stability


def test_help_answers(lab_env):
    result = run_lab_cli("--help", env=lab_env)
    assert result.returncode == 0
    for command in ("list", "show", "run", "check", "demo", "up", "status", "down"):
        assert command in result.stdout
    run_help = run_lab_cli("run", "--help", env=lab_env).stdout
    assert "--variant" in run_help and "--duration" in run_help and "--json" in run_help
