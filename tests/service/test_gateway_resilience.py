"""The gateway's resilience stack, wired: timeouts, shared pool vs bulkheads, circuit breaker.

A real gateway in front of two real apis (payments, catalog), all aiohttp servers on
127.0.0.1 port 0; faults go through the apis' /admin/faults. Nothing under test is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import pytest

from services.api.app import ApiConfig
from services.api.app import create_app as create_api
from services.gateway.__main__ import build_config, main, parse_args
from services.gateway.app import DownstreamConfig, GatewayConfig, Timeouts, create_app
from services.gateway.breaker import BreakerConfig
from services.gateway.retry import RetryPolicy
from tests.service.test_gateway import serve

ONE_TRY = RetryPolicy("none", deadline_s=5)


@dataclass
class Setup:
    """What differs between the tests: each downstream's config, the gateway's pool."""

    payments: Mapping[str, object] = field(default_factory=dict)
    catalog: Mapping[str, object] = field(default_factory=dict)
    pool: str = "per-downstream"
    shared_max_connections: int = 100


@dataclass
class Stack:
    payments: str
    catalog: str
    gateway: str
    session: aiohttp.ClientSession

    async def faults(self, api: str, **settings: object) -> None:
        async with self.session.put(f"{api}/admin/faults", json=settings) as r:
            assert r.status == 200, await r.text()

    async def get(self, path: str) -> tuple[int, float, Mapping[str, str]]:
        started = time.monotonic()
        async with self.session.get(f"{self.gateway}{path}") as r:
            await r.read()
            return r.status, time.monotonic() - started, r.headers

    async def downstream(self, name: str) -> dict:
        async with self.session.get(f"{self.gateway}/admin/stats") as r:
            return (await r.json())["downstreams"][name]

    async def metrics(self) -> str:
        async with self.session.get(f"{self.gateway}/metrics") as r:
            return await r.text()


@pytest.fixture
async def stack(request) -> AsyncIterator[Stack]:
    setup: Setup = getattr(request, "param", Setup())
    runners, urls = [], {}
    for name, seed in (("payments", 1), ("catalog", 2)):
        runner, urls[name] = await serve(create_api(ApiConfig(replica_id=f"{name}-1", seed=seed)))
        runners.append(runner)
    downstreams = tuple(
        DownstreamConfig(
            name=name,
            urls=(urls[name],),
            routes=(route,),
            **{"policy": ONE_TRY, **getattr(setup, name)},
        )
        for name, route in (("payments", "/checkout"), ("catalog", "/catalog"))
    )
    config = GatewayConfig(
        downstreams=downstreams,
        pool=setup.pool,  # type: ignore[arg-type]
        shared_max_connections=setup.shared_max_connections,
    )
    gw_runner, gw_url = await serve(create_app(config))
    async with aiohttp.ClientSession() as session:
        yield Stack(urls["payments"], urls["catalog"], gw_url, session)
    await gw_runner.cleanup()
    for runner in runners:
        await runner.cleanup()


def _sample(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


# --- timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stack", [Setup(payments={"timeouts": Timeouts(connect_s=0.5, read_s=0.3)})], indirect=True
)
async def test_a_read_timeout_answers_504_instead_of_waiting(stack):
    await stack.faults(stack.payments, latency_ms=1000)
    status, took, _ = await stack.get("/checkout")
    assert status == 504 and 0.25 < took < 1.0, (status, took)
    assert (await stack.downstream("payments"))["calls"] == {"timeout": 1}


@pytest.mark.parametrize(
    "stack",
    [Setup(payments={"policy": RetryPolicy("none", deadline_s=0.4)})],
    indirect=True,
)
async def test_the_per_request_deadline_bounds_a_call_without_a_read_timeout(stack):
    await stack.faults(stack.payments, latency_ms=1000)
    status, took, _ = await stack.get("/checkout")
    assert status == 504 and took < 1.0, (status, took)


# --- one shared pool vs a bulkhead per downstream -----------------------------------------

NO_LIMITS = {"timeouts": Timeouts(connect_s=None, read_s=None)}


async def _while_payments_hangs(stack: Stack, calls: int) -> list[asyncio.Task]:
    """Start `calls` /checkout requests on a payments that takes 1.5 s each."""
    await stack.faults(stack.payments, latency_ms=1500)
    pending = [asyncio.create_task(stack.get("/checkout")) for _ in range(calls)]
    await asyncio.sleep(0.2)
    return pending


@pytest.mark.parametrize(
    "stack",
    [Setup(payments=NO_LIMITS, catalog=NO_LIMITS, pool="shared", shared_max_connections=3)],
    indirect=True,
)
async def test_a_shared_pool_makes_the_catalog_wait_behind_slow_payments(stack):
    pending = await _while_payments_hangs(stack, 3)
    status, took, _ = await stack.get("/catalog")
    assert status == 200 and took > 1.0, f"catalog waited {took:.3f} s for a slot"
    assert all(s == 200 for s, _, _ in await asyncio.gather(*pending))


@pytest.mark.parametrize(
    "stack",
    [
        Setup(
            payments={"timeouts": Timeouts(connect_s=0.2)},
            catalog={"timeouts": Timeouts(connect_s=0.2)},
            pool="shared",
            shared_max_connections=3,
        )
    ],
    indirect=True,
)
async def test_the_wait_for_a_shared_slot_counts_against_the_connect_timeout(stack):
    pending = await _while_payments_hangs(stack, 3)
    status, took, _ = await stack.get("/catalog")
    assert status == 504 and took < 0.6, (status, took)
    await asyncio.gather(*pending)


@pytest.mark.parametrize(
    "stack",
    [Setup(payments={**NO_LIMITS, "max_connections": 2, "max_in_flight": 2})],
    indirect=True,
)
async def test_a_bulkhead_refuses_fast_and_keeps_the_catalog_fast(stack):
    pending = await _while_payments_hangs(stack, 2)
    status, took, headers = await stack.get("/checkout")
    assert status == 503 and took < 0.2 and headers["Retry-After"] == "1", (status, took)
    status, took, _ = await stack.get("/catalog")
    assert status == 200 and took < 0.3, (status, took)
    assert [s for s, _, _ in await asyncio.gather(*pending)] == [200, 200]
    payments = await stack.downstream("payments")
    assert payments["calls"] == {"200": 2, "bulkhead_full": 1}
    assert payments["bulkhead"]["peak_in_flight"] == 2 and payments["bulkhead"]["rejected"] == 1
    assert _sample(await stack.metrics(), "rejected_total", reason="bulkhead_full") == 1


# --- the circuit breaker ------------------------------------------------------------------

BREAKER = {
    "timeouts": Timeouts(connect_s=0.5, read_s=0.2),
    "breaker": BreakerConfig("payments", fail_max=2, reset_timeout_s=0.5),
}


@pytest.mark.parametrize("stack", [Setup(payments=BREAKER)], indirect=True)
async def test_the_breaker_opens_answers_fast_probes_and_closes(stack):
    await stack.faults(stack.payments, latency_ms=600)
    for _ in range(2):
        assert (await stack.get("/checkout"))[0] == 504
    status, took, headers = await stack.get("/checkout")
    assert status == 503 and took < 0.05 and headers["Retry-After"] == "1", (status, took)
    assert _sample(await stack.metrics(), "breaker_state", breaker="payments") == 2
    assert (await stack.get("/catalog"))[0] == 200, "the catalog has no breaker trouble"

    await asyncio.sleep(0.55)
    assert (await stack.get("/checkout"))[0] == 504, "the trial fails: open again"
    assert (await stack.get("/checkout"))[0] == 503
    await stack.faults(stack.payments, latency_ms=0)
    await asyncio.sleep(0.55)
    assert (await stack.get("/checkout"))[0] == 200, "the trial succeeds: closed"

    breaker = (await stack.downstream("payments"))["breaker"]
    assert breaker["state"] == "closed" and breaker["reset_timeout_s"] == 0.5
    moves = [(t["from"], t["to"]) for t in breaker["transition_log"]]
    assert moves == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    epochs = [t["epoch_s"] for t in breaker["transition_log"]]
    assert epochs == sorted(epochs) and abs(epochs[-1] - time.time()) < 1
    metrics = await stack.metrics()
    assert _sample(metrics, "breaker_state", breaker="payments") == 0
    assert _sample(metrics, "rejected_total", reason="breaker_open") == 2


@pytest.mark.parametrize("stack", [Setup(payments=BREAKER)], indirect=True)
async def test_client_errors_are_neutral_server_errors_open_it(stack):
    await stack.faults(stack.payments, error_status=404)
    for _ in range(5):
        assert (await stack.get("/checkout"))[0] == 404
    assert (await stack.downstream("payments"))["breaker"]["state"] == "closed"
    await stack.faults(stack.payments, error_status=503)
    for _ in range(2):
        assert (await stack.get("/checkout"))[0] == 503
    breaker = (await stack.downstream("payments"))["breaker"]
    assert breaker["state"] == "open" and breaker["neutral"] == 5 and breaker["failures"] == 2


# --- the command line ---------------------------------------------------------------------


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
