"""The worker pool's additions for the deadlines lab (services/api/workpool.py): shedding
work that could not finish before its deadline, and the per-request work log (real
asyncio sleeps of a few ms, no server)."""

from __future__ import annotations

import asyncio
import time

from services.api.workpool import PoolConfig, WorkPool


async def _arrive(pool: WorkPool, timeouts_ms: list[float | None]) -> list[str]:
    """Requests arriving together, in order, each with its client's timeout."""
    outcomes: list[str] = [""] * len(timeouts_ms)

    async def one(i: int, timeout_ms: float | None) -> None:
        outcomes[i] = await pool.serve(timeout_ms, f"r{i}") or "done"

    tasks = []
    for i, timeout_ms in enumerate(timeouts_ms):
        tasks.append(asyncio.create_task(one(i, timeout_ms)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return outcomes


async def test_hopeless_requests_are_shed_at_once_only_when_asked():
    # One worker, 40 ms of work: the second request would end at ~80 ms, past its 60 ms.
    pool = WorkPool(PoolConfig(workers=1, work_ms=40, shed_hopeless=True))
    started = time.monotonic()
    assert await _arrive(pool, [60, 60, 30, None]) == ["done", "deadline", "deadline", "done"]
    assert pool.shed["deadline"] == 2 and pool.completed == 2 and pool.late == 0
    assert time.monotonic() - started < 0.2
    assert pool.snapshot()["shed_hopeless"] is True
    plain = WorkPool(PoolConfig(workers=1, work_ms=40))
    assert await _arrive(plain, [60, 60, 30, None]) == ["done"] * 4
    assert plain.late == 2 and plain.snapshot()["shed_hopeless"] is False


async def test_a_waiter_is_shed_when_its_turn_comes_too_late_for_its_work():
    # Admitted at arrival (40 ms wait + 40 ms work fit in 100 ms); then the work grows 3 x,
    # and at its turn (~40 ms) 120 ms of work no longer fit before its deadline.
    factor = [1.0]
    config = PoolConfig(workers=1, work_ms=40, shed_hopeless=True)
    pool = WorkPool(config, factor=lambda: factor[0])
    first = asyncio.create_task(pool.serve(None, "first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(pool.serve(100, "second"))
    await asyncio.sleep(0)
    factor[0] = 3.0
    assert await first == "" and await second == "deadline"
    assert [entry[0] for entry in pool.work_log] == []


async def test_the_work_log_keeps_each_piece_of_work_by_request_id():
    pool = WorkPool(PoolConfig(workers=2, work_ms=10, work_log=True))
    before = time.time()
    await _arrive(pool, [None, None, None])
    assert [entry[0] for entry in pool.work_log] == ["r0", "r1", "r2"]
    for _, start, end in pool.work_log:
        assert before <= start < end <= time.time() and end - start >= 0.009
    off = WorkPool(PoolConfig(workers=1, work_ms=5))
    await _arrive(off, [None])
    assert off.work_log == []
