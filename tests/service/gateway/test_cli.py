"""The command line (python -m services.gateway): options to config, errors, the process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from services.gateway.__main__ import build_config, main, parse_args
from services.gateway.breaker import BreakerConfig
from services.gateway.config import BudgetConfig, Timeouts
from services.gateway.retry.policy import RetryPolicy
from tests.service.gateway.harness import closed_port


def test_cli_builds_the_policy_budget_and_timeouts():
    args = parse_args(
        ["--port", "1", "--api-url", "http://a:1,http://b:2/", "--retry-strategy", "full-jitter",
         "--retry-max-attempts", "7", "--retry-base", "0.2", "--retry-cap", "3",
         "--retry-deadline", "9", "--retry-after", "off", "--budget", "on",
         "--budget-ratio", "0.2", "--connect-timeout", "0.5", "--max-connections", "0"]
    )  # fmt: skip
    config = build_config(args)
    (api,) = config.downstreams
    assert api.urls == ("http://a:1", "http://b:2")
    assert api.policy == RetryPolicy(
        "full-jitter", 7, 0.2, 3.0, 9.0, honour_retry_after=False, attempt_timeout_s=None
    )
    assert api.budget == BudgetConfig(ratio=0.2, min_retries_per_s=1.0, window_s=10.0)
    assert api.timeouts == Timeouts(connect_s=0.5, read_s=None)
    assert api.max_connections == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "1"], "at least one downstream"),
        (["--port", "1", "--api-url", "http://a:1", "--retry-cap", "0.01"], "cap_s"),
        (["--port", "0", "--api-url", "http://a:1"], "--port"),
    ],
)
def test_cli_rejects_bad_settings_with_exit_2(argv, message):
    result = subprocess.run(
        [sys.executable, "-m", "services.gateway", *argv], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_per_downstream_overrides():
    args = parse_args(
        ["--port", "1", "--payments-url", "http://p:1", "--catalog-url", "http://c:2",
         "--read-timeout", "1", "--max-connections", "20",
         "--payments-policy", "max-in-flight=10,max-connections=10,breaker=on,"
         "breaker-reset-timeout=2.5,retry-deadline=0"]
    )  # fmt: skip
    payments, catalog = build_config(args).downstreams
    assert (payments.name, payments.routes, catalog.routes) == (
        "payments",
        ("/checkout",),
        ("/catalog",),
    )
    assert payments.max_in_flight == 10 and payments.max_connections == 10
    assert payments.breaker == BreakerConfig("payments", reset_timeout_s=2.5)
    assert payments.policy.deadline_s == 86_400, "0 = no deadline"
    assert catalog.breaker is None and catalog.max_in_flight == 0
    assert catalog.max_connections == 20 and catalog.timeouts.read_s == 1.0
    assert payments.timeouts.read_s == 1.0, "not overridden: the common value"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--payments-policy", "no-such=1"], "policy override 'no-such=1'"),
        (["--payments-policy", "read-timeout"], "expected KEY=VALUE"),
        (["--payments-policy", "breaker=maybe"], "invalid choice"),
        (["--payments-policy", "max-in-flight=x"], "invalid int value"),
        (["--pool", "shared", "--max-in-flight", "5"], "a bulkhead needs a pool of its own"),
        (["--max-in-flight", "50", "--max-connections", "10"], "must be >= max_in_flight"),
        (["--breaker", "on", "--breaker-fail-max", "0"], "fail_max must be >= 1"),
    ],
)
def test_cli_rejects_bad_resilience_settings_with_exit_2(argv, message, capsys):
    assert main(["--port", "1", "--payments-url", "http://p:1", *argv]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_process_serves_and_stops_on_sigterm():
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.gateway", "--port", str(port), "--api-url",
         f"http://127.0.0.1:{closed_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("gateway did not start listening")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert f"listening on http://127.0.0.1:{port}" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
