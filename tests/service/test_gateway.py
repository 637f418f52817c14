"""The gateway against a real api, both on ephemeral 127.0.0.1 ports (no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from services.api.app import ApiConfig
from services.api.app import create_app as create_api
from services.gateway.__main__ import build_config, parse_args
from services.gateway.app import (
    BudgetConfig,
    DownstreamConfig,
    GatewayConfig,
    Timeouts,
    create_app,
)
from services.gateway.retry import RetryPolicy

FAST = RetryPolicy(
    "exponential", max_attempts=3, base_s=0.01, cap_s=0.02, deadline_s=2, honour_retry_after=False
)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, keepalive_timeout=75)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Topology:
    api: str
    gateway: str
    session: aiohttp.ClientSession

    async def faults(self, **settings: object) -> None:
        async with self.session.put(f"{self.api}/admin/faults", json=settings) as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict:
        async with self.session.get(f"{self.gateway}/admin/stats") as r:
            assert r.status == 200
            return await r.json()


@pytest.fixture
async def topology(request) -> AsyncIterator[Topology]:
    """api + gateway; a test picks the gateway's policy with @pytest.mark.parametrize-free
    indirect settings: request.param is a dict of DownstreamConfig overrides."""
    overrides = getattr(request, "param", {})
    api_runner, api_url = await serve(create_api(ApiConfig(replica_id="api-9", seed=1)))
    downstream = DownstreamConfig(name="api", urls=(api_url,), **{"policy": FAST, **overrides})
    gw_runner, gw_url = await serve(
        create_app(GatewayConfig(replica_id="gw-3", downstreams=(downstream,), seed=5))
    )
    async with aiohttp.ClientSession() as session:
        yield Topology(api_url, gw_url, session)
    await gw_runner.cleanup()
    await api_runner.cleanup()


async def test_proxies_work_and_reports_attempts(topology):
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 200
        assert r.headers["X-Attempts"] == "1"
        assert r.headers["X-Gateway"] == "gw-3"
        assert r.headers["X-Replica"] == "api-9"
        assert r.content_type == "application/json"
        assert (await r.json())["method"] == "GET"
    stats = await topology.stats()
    api = stats["downstreams"]["api"]
    assert api["attempts"] == 1 and api["retries"] == 0
    assert api["by_outcome"] == {"200": 1}
    assert stats["responses"] == {"200": 1}


async def test_outage_is_retried_up_to_max_attempts_then_passed_through(topology):
    await topology.faults(outage_s=30)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503
        assert r.headers["X-Attempts"] == "3"
        assert r.content_type == "application/problem+json"
        assert "Retry-After" in r.headers
    api = (await topology.stats())["downstreams"]["api"]
    assert api["by_outcome"] == {"503": 3}
    assert api["retries"] == 2 and api["gave_up_max_attempts"] == 1
    async with topology.session.get(f"{topology.api}/admin/stats") as r:
        assert (await r.json())["arrivals"]["total"] == 3, "the api saw every attempt"


@pytest.mark.parametrize(
    "topology",
    [{"policy": RetryPolicy("full-jitter", max_attempts=20, base_s=0.05, cap_s=0.1, deadline_s=3)}],
    indirect=True,
)
async def test_retries_ride_out_a_short_outage(topology):
    await topology.faults(outage_s=0.3)
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 200
        assert int(r.headers["X-Attempts"]) > 1
    assert 0.25 < time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "topology", [{"policy": RetryPolicy("exponential", 3, 0.01, 0.02, deadline_s=2)}], indirect=True
)
async def test_a_retry_after_beyond_the_deadline_ends_the_call_at_once(topology):
    await topology.faults(outage_s=30)  # the api answers Retry-After: 30
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    assert time.monotonic() - started < 0.5
    assert (await topology.stats())["downstreams"]["api"]["gave_up_deadline"] == 1


async def test_post_is_retried_only_with_an_idempotency_key(topology):
    await topology.faults(outage_s=30)
    async with topology.session.post(f"{topology.gateway}/work", data=b"{}") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    headers = {"Idempotency-Key": "order-42"}
    async with topology.session.post(f"{topology.gateway}/work", data=b"{}", headers=headers) as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "3"
    assert (await topology.stats())["downstreams"]["api"]["not_retried_unsafe"] == 1


async def test_client_errors_are_not_retried(topology):
    await topology.faults(error_status=404)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 404 and r.headers["X-Attempts"] == "1"


@pytest.mark.parametrize(
    "topology", [{"budget": BudgetConfig(ratio=0.0, min_retries_per_s=0.0)}], indirect=True
)
async def test_an_empty_retry_budget_denies_retries(topology):
    await topology.faults(outage_s=30)
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 503 and r.headers["X-Attempts"] == "1"
    api = (await topology.stats())["downstreams"]["api"]
    assert api["retries_denied_by_budget"] == 1
    assert api["budget"]["requests_in_window"] == 1


@pytest.mark.parametrize(
    "topology",
    [{"policy": RetryPolicy("immediate", max_attempts=2, deadline_s=0.3)}],
    indirect=True,
)
async def test_a_slow_api_is_a_504_within_the_deadline(topology):
    await topology.faults(latency_ms=2000)
    started = time.monotonic()
    async with topology.session.get(f"{topology.gateway}/work") as r:
        assert r.status == 504
        assert r.content_type == "application/problem+json"
    assert time.monotonic() - started < 1.0
    api = (await topology.stats())["downstreams"]["api"]
    assert api["by_outcome"] == {"timeout": 1}, "the deadline left no time for a second attempt"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_api_is_a_502_after_retries():
    downstream = DownstreamConfig(
        name="api", urls=(f"http://127.0.0.1:{_closed_port()}",), policy=FAST
    )
    runner, url = await serve(create_app(GatewayConfig(downstreams=(downstream,))))
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/work") as r:
            assert r.status == 502
            assert r.headers["X-Attempts"] == "3"
            assert "connect_error" in (await r.json())["detail"]
    finally:
        await runner.cleanup()


async def test_health_readiness_and_stats_shape(topology):
    for path in ("/healthz", "/readyz"):
        async with topology.session.get(f"{topology.gateway}{path}") as r:
            assert r.status == 200
    stats = await topology.stats()
    assert stats["replica"] == "gw-3" and stats["keepalive_timeout_s"] == 75.0
    api = stats["downstreams"]["api"]
    assert api["policy"]["strategy"] == "exponential"
    assert {"in_flight", "calls", "attempts", "retries", "budget"} <= set(api)


async def test_requests_in_flight_when_the_api_crashes_fail_together(topology):
    """The api's outage fails requests already in flight (a crash), all at once."""
    await topology.faults(latency_ms=5000)
    url = f"{topology.api}/work"

    async def one() -> tuple[int, float]:
        async with topology.session.get(url) as r:
            return r.status, time.monotonic()

    pending = [asyncio.create_task(one()) for _ in range(10)]
    await asyncio.sleep(0.3)
    crashed = time.monotonic()
    await topology.faults(outage_s=5)
    answers = await asyncio.gather(*pending)
    assert {status for status, _ in answers} == {503}
    assert max(t for _, t in answers) - crashed < 0.5


# --- the command line -------------------------------------------------------------------


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


def test_process_serves_and_stops_on_sigterm():
    port = _closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.gateway", "--port", str(port), "--api-url",
         f"http://127.0.0.1:{_closed_port()}"],
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


async def test_prometheus_metrics_count_gateway_responses(topology):
    for _ in range(3):
        async with topology.session.get(f"{topology.gateway}/work") as r:
            assert r.status == 200
    async with topology.session.get(f"{topology.gateway}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    counted = [
        line for line in text.splitlines()
        if line.startswith("http_requests_total") and 'service="gateway"' in line
        and 'status="200"' in line and "/work" in line
    ]  # fmt: skip
    assert counted and float(counted[0].rsplit(" ", 1)[1]) == 3.0, counted
