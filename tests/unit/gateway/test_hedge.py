"""Hedged requests (services.gateway.hedge): when a hedge goes out, who wins, the budget;
and a real gateway hedging to the other of two real api replicas."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from services.gateway import __main__ as cli
from services.gateway.app import create_app
from services.gateway.hedge import HedgeConfig, Hedger


def copies(delays: dict[int, float], log: list[str]):
    async def send(n: int) -> int:
        log.append(f"start {n}")
        try:
            await asyncio.sleep(delays[n])
        except asyncio.CancelledError:
            log.append(f"cancelled {n}")
            raise
        return n

    return send


async def test_a_fast_first_copy_sends_no_hedge() -> None:
    hedger, log = Hedger(HedgeConfig(delay_s=0.05)), []
    assert await hedger.run(copies({0: 0.0, 1: 0.0}, log)) == 0
    assert log == ["start 0"]
    assert (hedger.calls, hedger.slow, hedger.hedges) == (1, 0, 0)


async def test_a_slow_first_copy_is_hedged_and_the_loser_cancelled() -> None:
    hedger, log = Hedger(HedgeConfig(delay_s=0.02)), []
    assert await hedger.run(copies({0: 5.0, 1: 0.0}, log)) == 1
    assert log == ["start 0", "start 1", "cancelled 0"]
    assert (hedger.slow, hedger.hedges, hedger.hedge_won) == (1, 1, 1)


async def test_the_first_copy_can_still_win_after_the_hedge_went_out() -> None:
    hedger, log = Hedger(HedgeConfig(delay_s=0.01)), []
    assert await hedger.run(copies({0: 0.03, 1: 5.0}, log)) == 0
    assert log[-1] == "cancelled 1"
    assert (hedger.hedges, hedger.hedge_won) == (1, 0)


async def test_a_failed_copy_waits_for_the_other() -> None:
    async def send(n: int) -> int:
        await asyncio.sleep(0.05 if n == 0 else 0.0)
        if n == 1:
            raise ConnectionError("reset")
        return n

    assert await Hedger(HedgeConfig(delay_s=0.01)).run(send) == 0


async def test_both_copies_failing_raise_the_first_error() -> None:
    async def send(n: int) -> int:
        await asyncio.sleep(0.03 if n == 0 else 0.0)
        raise ConnectionError(f"copy {n}")

    with pytest.raises(ConnectionError, match="copy 0"):
        await Hedger(HedgeConfig(delay_s=0.01)).run(send)


async def test_the_budget_caps_hedges_when_every_call_is_slow() -> None:
    config = HedgeConfig(delay_s=0.001, budget_ratio=0.1, budget_max_tokens=1)
    hedger = Hedger(config)
    for _ in range(50):
        await hedger.run(copies({0: 0.005, 1: 0.005}, []))
    assert hedger.slow == 50
    assert hedger.hedges == 5
    assert hedger.denied == 45


async def test_without_a_budget_every_slow_call_is_hedged() -> None:
    hedger = Hedger(HedgeConfig(delay_s=0.001, budget_ratio=None))
    for _ in range(20):
        await hedger.run(copies({0: 0.005, 1: 0.005}, []))
    assert hedger.hedges == 20
    assert hedger.snapshot()["budget"] is None


@pytest.mark.parametrize("delay", [0.0, -1.0, float("nan"), 61.0])
def test_a_bad_delay_is_rejected(delay: float) -> None:
    with pytest.raises(ValueError, match="hedge delay"):
        HedgeConfig(delay_s=delay)


@pytest.mark.parametrize(("ratio", "tokens"), [(0.0, 10.0), (1.5, 10.0), (0.1, 0.5)])
def test_a_bad_budget_is_rejected(ratio: float, tokens: float) -> None:
    with pytest.raises(ValueError, match="hedge budget"):
        HedgeConfig(delay_s=0.05, budget_ratio=ratio, budget_max_tokens=tokens)


def test_options_build_the_config_and_bad_ones_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--port", "8000", "--api-url", "http://127.0.0.1:1"]
    assert cli.build_config(cli.parse_args(base)).downstreams[0].hedge is None
    on = cli.build_config(cli.parse_args([*base, "--hedge", "on", "--hedge-delay-ms", "40"]))
    assert on.downstreams[0].hedge == HedgeConfig(delay_s=0.04)
    unbudgeted = [*base, "--hedge", "on", "--hedge-budget", "off"]
    assert cli.build_config(cli.parse_args(unbudgeted)).downstreams[0].hedge == HedgeConfig(
        delay_s=0.05, budget_ratio=None
    )
    assert cli.main([*base, "--hedge", "on", "--hedge-delay-ms", "0"]) == 2
    assert "hedge delay" in capsys.readouterr().err


NAME = web.AppKey("name", str)
SEEN = web.AppKey("seen", Counter)


async def work(request: web.Request) -> web.Response:
    """Replica "slow" takes 5 s, "fast" answers at once; both count what they received."""
    name = request.app[NAME]
    request.app[SEEN][request.headers.get("X-Request-Id", "")] += 1
    if name == "slow":
        await asyncio.sleep(5)
    return web.json_response({"replica": name}, headers={"X-Replica": name})


@pytest.fixture
async def hedging() -> AsyncIterator[tuple[str, list[Counter]]]:
    """A gateway hedging after 50 ms (no budget) in front of a slow and a fast api."""
    runners, urls, seen = [], [], []
    for name in ("slow", "fast", ""):
        if name:
            app = web.Application()
            app[NAME], app[SEEN] = name, Counter()
            app.router.add_get("/work", work)
            seen.append(app[SEEN])
        else:
            args = ["--port", "1", "--api-url", ",".join(urls), "--hedge", "on"]
            args += ["--hedge-delay-ms", "50", "--hedge-budget", "off"]
            app = create_app(cli.build_config(cli.parse_args(args)))
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        urls.append(f"http://{host}:{port}")
        runners.append(runner)
    yield urls[-1], seen
    for runner in reversed(runners):
        await runner.cleanup()


async def test_a_gateway_hedges_to_the_other_replica_and_the_fast_answer_wins(
    hedging: tuple[str, list[Counter]],
) -> None:
    url, (slow, fast) = hedging
    async with aiohttp.ClientSession() as client:
        answers = []
        for n in range(4):
            headers = {"X-Request-Id": f"r{n}"}
            async with client.get(f"{url}/work", headers=headers) as response:
                answers.append((response.status, response.headers["X-Replica"]))
        async with client.get(f"{url}/admin/stats") as response:
            hedge = (await response.json())["downstreams"]["api"]["hedge"]
    assert answers == [(200, "fast")] * 4
    # Calls alternate between the replicas: the two that went to the slow one first were
    # hedged to the fast one, which therefore saw every request id once.
    assert sorted(slow) == ["r0", "r2"] and sorted(fast) == ["r0", "r1", "r2", "r3"]
    assert {k: hedge[k] for k in ("calls", "slow", "hedges", "hedge_won")} == {
        "calls": 4, "slow": 2, "hedges": 2, "hedge_won": 2,
    }  # fmt: skip
