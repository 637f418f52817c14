"""One connection pool shared by every downstream: a slow one makes the others wait."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.config import Timeouts
from tests.service.gateway.harness import NO_LIMITS, Setup, while_payments_hangs


@pytest.mark.parametrize(
    "stack",
    [Setup(payments=NO_LIMITS, catalog=NO_LIMITS, pool="shared", shared_max_connections=3)],
    indirect=True,
)
async def test_a_shared_pool_makes_the_catalog_wait_behind_slow_payments(stack):
    pending = await while_payments_hangs(stack, 3)
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
    pending = await while_payments_hangs(stack, 3)
    status, took, _ = await stack.get("/catalog")
    assert status == 504 and took < 0.6, (status, took)
    await asyncio.gather(*pending)
