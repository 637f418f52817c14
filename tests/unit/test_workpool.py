"""The api's worker pool (services/api/workpool.py): capacity, queue order, shedding,
the work factor, counters (real asyncio sleeps of a few ms, no server)."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from services.api import workpool
from services.api.workpool import PoolConfig, WorkPool


async def _burst(pool: WorkPool, n: int, timeout_ms: float | None = None) -> list[str]:
    """n requests arriving together, in order (each queued before the next arrives)."""
    order: list[str] = []

    async def one(i: int) -> None:
        outcome = await pool.serve(timeout_ms)
        order.append(outcome or str(i))

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return order


async def test_workers_bound_the_work_in_progress_and_the_rest_waits_in_order():
    pool = WorkPool(PoolConfig(workers=2, work_ms=20))
    order = await _burst(pool, 6)
    assert order[:2] == ["0", "1"] and order[2:] == ["2", "3", "4", "5"]
    assert (pool.arrivals, pool.started, pool.completed) == (6, 6, 6)
    assert pool.queue_max == 4 and pool.busy == 0
    assert pool.completions.total == 6


async def test_lifo_serves_the_newest_waiter_first():
    pool = WorkPool(PoolConfig(workers=1, work_ms=10, discipline="lifo"))
    assert await _burst(pool, 4) == ["0", "3", "2", "1"]


async def test_a_full_queue_sheds_at_once():
    pool = WorkPool(PoolConfig(workers=1, work_ms=20, queue_limit=2))
    order = await _burst(pool, 5)
    assert order.count("queue_full") == 2 and pool.shed["queue_full"] == 2
    assert pool.completed == 3 and pool.snapshot()["shed"] == {
        "queue_full": 2, "queue_time": 0, "deadline": 0}  # fmt: skip


async def test_a_queue_time_limit_sheds_those_that_waited_too_long():
    pool = WorkPool(PoolConfig(workers=1, work_ms=30, max_queue_ms=45))
    order = await _burst(pool, 4)
    # 0 runs at once, 1 starts after 30 ms, 2 and 3 would start after 60 ms: shed.
    assert order.count("queue_time") == 2 and pool.completed == 2


async def test_expired_deadlines_are_shed_only_when_asked_and_late_work_is_counted():
    kept = WorkPool(PoolConfig(workers=1, work_ms=30))
    assert "deadline" not in await _burst(kept, 3, timeout_ms=40)
    assert kept.late == 2 and kept.late_completions.total == 2

    shedding = WorkPool(PoolConfig(workers=1, work_ms=30, shed_expired=True))
    order = await _burst(shedding, 3, timeout_ms=40)
    assert order.count("deadline") == 1 and shedding.shed["deadline"] == 1


async def test_the_work_factor_is_read_as_each_request_starts():
    factor = [1.0]
    pool = WorkPool(PoolConfig(workers=1, work_ms=20), factor=lambda: factor[0])
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pool.serve()
    normal = loop.time() - started
    factor[0] = 4.0
    started = loop.time()
    await pool.serve()
    assert loop.time() - started >= 3.5 * min(normal, 0.02)
    factor[0] = 0.0  # the fault cleared: not scaled (never faster than normal)
    started = loop.time()
    await pool.serve()
    assert 0.019 <= loop.time() - started < 0.07


async def test_a_cancelled_waiter_leaves_the_queue_and_a_cancelled_worker_frees_its_slot():
    pool = WorkPool(PoolConfig(workers=1, work_ms=50))
    running = asyncio.create_task(pool.serve())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(pool.serve())
    await asyncio.sleep(0)
    assert pool.snapshot()["queued"] == 1
    waiting.cancel()
    running.cancel()
    await asyncio.gather(running, waiting, return_exceptions=True)
    assert pool.busy == 0 and pool.snapshot()["queued"] == 0
    assert await pool.serve() == ""


@pytest.mark.parametrize(
    "header, expected",
    [(None, None), ("", None), ("1000", 1000.0), ("0", None), ("-5", None), ("x", None),
     ("inf", None), ("nan", None)],
)  # fmt: skip
def test_timeout_header(header, expected):
    assert workpool.timeout_ms(header) == expected


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    workpool.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_off_by_default_and_bad_values_are_refused():
    assert workpool.config_from_args(_parse()) is None
    config = workpool.config_from_args(
        _parse("--workers", "10", "--work-ms", "100", "--queue", "lifo", "--max-queue-ms", "300")
    )
    assert config == PoolConfig(10, 100.0, "lifo", 0, 300.0, False)
    assert config.capacity_per_s == 100
    for argv in (("--workers", "-1"), ("--workers", "2", "--work-ms", "0"),
                 ("--workers", "2", "--queue-limit", "-1")):  # fmt: skip
        with pytest.raises(ValueError):
            workpool.config_from_args(_parse(*argv))
