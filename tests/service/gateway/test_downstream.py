"""A downstream's resilience stack, wired: timeouts and deadline, bulkhead, circuit breaker.

A real gateway in front of two real apis (payments, catalog); see harness.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.gateway.breaker import BreakerConfig
from services.gateway.config import Timeouts
from services.gateway.retry.policy import RetryPolicy
from tests.service.gateway.harness import NO_LIMITS, Setup, metric_sample, while_payments_hangs

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


# --- a bulkhead per downstream ------------------------------------------------------------


@pytest.mark.parametrize(
    "stack",
    [Setup(payments={**NO_LIMITS, "max_connections": 2, "max_in_flight": 2})],
    indirect=True,
)
async def test_a_bulkhead_refuses_fast_and_keeps_the_catalog_fast(stack):
    pending = await while_payments_hangs(stack, 2)
    status, took, headers = await stack.get("/checkout")
    assert status == 503 and took < 0.2 and headers["Retry-After"] == "1", (status, took)
    status, took, _ = await stack.get("/catalog")
    assert status == 200 and took < 0.3, (status, took)
    assert [s for s, _, _ in await asyncio.gather(*pending)] == [200, 200]
    payments = await stack.downstream("payments")
    assert payments["calls"] == {"200": 2, "bulkhead_full": 1}
    assert payments["bulkhead"]["peak_in_flight"] == 2 and payments["bulkhead"]["rejected"] == 1
    assert metric_sample(await stack.metrics(), "rejected_total", reason="bulkhead_full") == 1


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
    assert metric_sample(await stack.metrics(), "breaker_state", breaker="payments") == 2
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
    assert metric_sample(metrics, "breaker_state", breaker="payments") == 0
    assert metric_sample(metrics, "rejected_total", reason="breaker_open") == 2


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
