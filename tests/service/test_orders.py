"""The orders resource and its idempotency-key store against a real redis-server
(tests/service/conftest.py) and real aiohttp servers: several api replicas share
one Redis, as behind the lab's load balancer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from services.api.app import ApiConfig, create_app
from services.api.faults import Faults
from services.api.local_keys import LocalKeys
from services.api.order_store import OrderStore
from services.api.orders import OrdersConfig, fingerprint, validate

ORDER = {"customer": "c-1", "items": [{"sku": "apple", "qty": 2}], "intent_id": "i-1"}
_prefixes = iter(range(1_000_000))


def prefix() -> str:
    """A fresh key space per test, on the module's shared Redis."""
    return f"t{next(_prefixes)}:"


@asynccontextmanager
async def replicas(
    redis_url: str, n: int = 1, faults: Callable[[], Faults] = Faults, **orders: object
) -> AsyncIterator[list[str]]:
    """`n` api replicas sharing one key space on `redis_url`; yields their base URLs."""
    config = OrdersConfig(redis_url=redis_url, prefix=prefix(), **orders)  # type: ignore[arg-type]
    runners = []
    try:
        for i in range(n):
            app = create_app(ApiConfig(replica_id=f"api-{i + 1}", faults=faults(), orders=config))
            runner = web.AppRunner(app, keepalive_timeout=75)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
        yield [f"http://127.0.0.1:{r.addresses[0][1]}" for r in runners]
    finally:
        for runner in runners:
            await runner.cleanup()


async def post(
    session: aiohttp.ClientSession, url: str, body: object, key: str | None = None
) -> tuple[int, dict, dict[str, str]]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(f"{url}/orders", data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, response.content_type


async def stored(session: aiohttp.ClientSession, url: str) -> list[dict]:
    async with session.get(f"{url}/orders?since=0&limit=10000") as response:
        assert response.status == 200
        return (await response.json())["orders"]


# --- the store itself --------------------------------------------------------------------------


@pytest.fixture
async def store(redis_server) -> AsyncIterator[OrderStore]:
    made = OrderStore.from_url(redis_server.url, prefix=prefix(), ttl_s=60, lease_s=5)
    yield made
    await made.close()


async def test_concurrent_begins_on_one_key_start_exactly_once(redis_server):
    """200 begins at once from 4 clients (4 replicas' pools): one starts, the rest see
    it in flight; after the commit every begin replays the same stored response.
    (A 10 s timeout: 128 connections opening at once on a loaded 2-core machine.)"""
    space = prefix()
    stores = [OrderStore.from_url(redis_server.url, prefix=space, timeout_s=10) for _ in range(4)]
    try:
        begins = await asyncio.gather(*(stores[i % 4].begin("k", "fp") for i in range(200)))
        started = [b for b in begins if b.outcome == "started"]
        assert len(started) == 1
        assert {b.outcome for b in begins} == {"started", "in_flight"}
        commit = await stores[0].commit({"id": "o1", **ORDER}, started[0].claim)
        assert commit.created
        again = await asyncio.gather(*(stores[i % 4].begin("k", "fp") for i in range(50)))
        assert {(b.outcome, b.status, b.body) for b in again} == {("done", 201, commit.body)}
        orders, more = await stores[0].since(0, 100)
        assert [o["id"] for o in orders] == ["o1"] and not more
    finally:
        for s in stores:
            await s.close()


async def test_same_key_different_fingerprint_is_a_mismatch(store):
    first = await store.begin("k", "fp-a")
    assert (await store.begin("k", "fp-b")).outcome == "mismatch"  # in flight
    await store.commit({"id": "o1", **ORDER}, first.claim)
    assert (await store.begin("k", "fp-b")).outcome == "mismatch"  # done
    assert (await store.begin("k", "fp-a")).outcome == "done"


async def test_completed_keys_expire_after_their_ttl(redis_server):
    store = OrderStore.from_url(redis_server.url, prefix=prefix(), ttl_s=0.3)
    try:
        begin = await store.begin("k", "fp")
        await store.commit({"id": "o1", **ORDER}, begin.claim)
        assert (await store.begin("k", "fp")).outcome == "done"
        await asyncio.sleep(0.45)
        assert (await store.begin("k", "fp")).outcome == "started"
    finally:
        await store.close()


async def test_an_expired_lease_cannot_commit(redis_server):
    """A request slower than its lease lost the key to a retry: its commit writes nothing."""
    store = OrderStore.from_url(redis_server.url, prefix=prefix(), lease_s=0.2)
    try:
        slow = await store.begin("k", "fp")
        await asyncio.sleep(0.3)
        retry = await store.begin("k", "fp")
        assert retry.outcome == "started"
        assert not (await store.commit({"id": "slow", **ORDER}, slow.claim)).created
        assert (await store.commit({"id": "retry", **ORDER}, retry.claim)).created
        orders, _ = await store.since(0, 10)
        assert [o["id"] for o in orders] == ["retry"]
    finally:
        await store.close()


async def test_release_lets_a_retry_start_and_only_the_holder_can_release(store):
    first = await store.begin("k", "fp")
    other = await store.begin("k2", "fp")
    await store.release(other.claim)
    assert (await store.begin("k", "fp")).outcome == "in_flight"
    await store.release(first.claim)
    assert (await store.begin("k", "fp")).outcome == "started"


async def test_since_pages_in_creation_order(store):
    for i in range(5):
        await store.commit({"id": f"o{i}", **ORDER})
    page, more = await store.since(0, 2)
    assert [o["seq"] for o in page] == [1, 2] and more
    page, more = await store.since(2, 10)
    assert [o["id"] for o in page] == ["o2", "o3", "o4"] and not more


def test_local_keys_follow_the_same_state_machine():
    now = [0.0]
    keys = LocalKeys(ttl_s=10, lease_s=2, clock=lambda: now[0])
    first = keys.begin("k", "fp")
    assert first.outcome == "started"
    assert keys.begin("k", "fp").outcome == "in_flight"
    assert keys.begin("k", "other").outcome == "mismatch"
    keys.complete(first.claim, 201, "{}")
    assert (keys.begin("k", "fp").outcome, keys.begin("k", "fp").body) == ("done", "{}")
    now[0] = 10.5
    assert keys.begin("k", "fp").outcome == "started"
    now[0] = 13.0  # the lease ran out without a commit
    assert keys.begin("k", "fp").outcome == "started"


def test_fingerprint_ignores_key_order_not_content():
    a = validate({"items": [{"qty": 2, "sku": "apple"}], "customer": "c-1"})
    b = validate({"customer": "c-1", "items": [{"sku": "apple", "qty": 2}]})
    c = validate({"customer": "c-1", "items": [{"sku": "apple", "qty": 3}]})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


# --- over HTTP, several replicas ---------------------------------------------------------------


async def test_concurrent_duplicates_across_replicas_commit_exactly_once(redis_server):
    async with (
        replicas(redis_server.url, 3, redis_timeout_s=10) as urls,  # 60 connects at once
        aiohttp.ClientSession() as session,
    ):
        answers = await asyncio.gather(
            *(post(session, urls[i % 3], ORDER, key="same") for i in range(60))
        )
        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {201, 409}, statuses
        assert statuses.count(201) >= 1
        assert len({body["id"] for status, body, _ in answers if status == 201}) == 1
        for status, _, headers in answers:
            if status == 409:
                assert headers["Content-Type"].startswith("application/problem+json")
                assert int(headers["Retry-After"]) >= 1
        originals = [h for s, _, h in answers if s == 201 and "Idempotent-Replayed" not in h]
        assert len(originals) == 1
        assert len(await stored(session, urls[0])) == 1


async def test_a_repeat_while_the_first_is_in_flight_is_409_then_a_replay(redis_server):
    def slow() -> Faults:
        return Faults(latency_ms=600)

    async with (
        replicas(redis_server.url, 2, faults=slow) as urls,
        aiohttp.ClientSession() as session,
    ):
        first = asyncio.create_task(post(session, urls[0], ORDER, key="k"))
        await asyncio.sleep(0.2)
        status, problem, headers = await post(session, urls[1], ORDER, key="k")
        assert (status, headers["Retry-After"]) == (409, "1")
        assert problem["type"] == "/problems/idempotency-key-in-flight"
        created = await first
        assert created[0] == 201 and "Idempotent-Replayed" not in created[2]
        replay = await post(session, urls[1], ORDER, key="k")
        assert replay[1] == created[1] and replay[2]["Idempotent-Replayed"] == "true"


async def test_a_retry_on_another_replica_replays_the_response(redis_server):
    async with replicas(redis_server.url, 2) as urls, aiohttp.ClientSession() as session:
        first = await post(session, urls[0], ORDER, key="k-1")
        retry = await post(session, urls[1], ORDER, key="k-1")
        assert first[0] == retry[0] == 201 and first[1] == retry[1]
        assert retry[2]["Idempotent-Replayed"] == "true"
        assert retry[2]["Location"] == f"/orders/{first[1]['id']}"
        assert first[1]["intent_id"] == "i-1" and first[1]["seq"] == 1
        assert (first[2]["X-Replica"], retry[2]["X-Replica"]) == ("api-1", "api-2")
        assert first[1]["replica"] == "api-1"
        async with session.get(f"{urls[1]}/orders/{first[1]['id']}") as response:
            assert response.status == 200 and await response.json() == first[1]
        async with session.get(f"{urls[0]}/admin/stats") as response:
            assert (await response.json())["orders"]["created"] == 1


async def test_same_key_with_a_different_body_is_422(redis_server):
    async with replicas(redis_server.url, 2) as urls, aiohttp.ClientSession() as session:
        assert (await post(session, urls[0], ORDER, key="k"))[0] == 201
        status, body, headers = await post(session, urls[1], {**ORDER, "customer": "c-2"}, "k")
        assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
        assert body["type"] == "/problems/idempotency-key-reused"
        assert len(await stored(session, urls[0])) == 1


async def test_a_key_after_its_ttl_creates_a_new_order(redis_server):
    async with (
        replicas(redis_server.url, 1, key_ttl_s=0.3) as urls,
        aiohttp.ClientSession() as session,
    ):
        first = await post(session, urls[0], ORDER, key="k")
        await asyncio.sleep(0.45)
        later = await post(session, urls[0], ORDER, key="k")
        assert first[0] == later[0] == 201 and first[1]["id"] != later[1]["id"]
        assert "Idempotent-Replayed" not in later[2]


@pytest.mark.parametrize(("store", "orders"), [("off", 3), ("local", 2), ("redis", 1)])
async def test_where_the_keys_live_decides_duplicates_across_replicas(redis_server, store, orders):
    """The same key once on replica 1, twice on replica 2: off makes 3 orders, keys in
    each replica's memory 2 (one per replica), a shared store 1."""
    async with (
        replicas(redis_server.url, 2, idempotency=store) as urls,
        aiohttp.ClientSession() as session,
    ):
        assert (await post(session, urls[0], ORDER, key="k"))[0] == 201
        assert (await post(session, urls[1], ORDER, key="k"))[0] == 201
        assert (await post(session, urls[1], ORDER, key="k"))[0] == 201
        assert len(await stored(session, urls[0])) == orders


async def test_a_lost_response_commits_then_the_retry_gets_the_order(redis_server):
    """The fault: the order is committed, the response held past the client's timeout."""

    def losing() -> Faults:
        return Faults(lose_response_rate=1.0, lose_response_ms=400)

    async with (
        replicas(redis_server.url, 2, faults=losing) as urls,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(TimeoutError):
            async with session.post(
                f"{urls[0]}/orders",
                json=ORDER,
                headers={"Idempotency-Key": "k"},
                timeout=aiohttp.ClientTimeout(total=0.15),
            ):
                pass
        [order] = await stored(session, urls[1])
        for url in urls:  # the fault off: the retry gets the committed order back
            async with session.put(f"{url}/admin/faults", json={"lose_response_rate": 0}) as r:
                assert r.status == 200
        status, body, headers = await post(session, urls[1], ORDER, key="k")
        assert status == 201 and body == order and headers["Idempotent-Replayed"] == "true"
        await asyncio.sleep(0.3)
        async with session.get(f"{urls[0]}/admin/stats") as response:
            assert (await response.json())["orders"]["lost_responses"] == 1


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "must be JSON"),
        (b"[]", 422, "JSON object"),
        ({"customer": "c"}, 422, "items"),
        ({"customer": "", "items": [{"sku": "a", "qty": 1}]}, 422, "customer"),
        ({"customer": "c d", "items": [{"sku": "a", "qty": 1}]}, 422, "customer"),
        ({"customer": "c", "items": []}, 422, "1-20 items"),
        ({"customer": "c", "items": [{"sku": "a", "qty": 1}] * 21}, 422, "1-20 items"),
        ({"customer": "c", "items": [{"sku": "a", "qty": 0}]}, 422, "qty"),
        ({"customer": "c", "items": [{"sku": "a", "qty": True}]}, 422, "qty"),
        ({"customer": "c", "items": [{"sku": "a", "qty": 1.5}]}, 422, "qty"),
        ({"customer": "c", "items": [{"sku": "a"}]}, 422, "each item"),
        ({"customer": "c", "items": [{"sku": 7, "qty": 1}]}, 422, "sku"),
        ({"customer": "c", "items": [{"sku": "a", "qty": 1}], "intent_id": 5}, 422, "intent_id"),
        ({"customer": "c", "items": [{"sku": "a", "qty": 1}], "price": 1}, 422, "unknown"),
    ],
)  # fmt: skip
async def test_bad_orders_are_4xx_problem_json_and_store_nothing(
    redis_server, body, status, fragment
):
    async with replicas(redis_server.url) as urls, aiohttp.ClientSession() as session:
        got, problem, headers = await post(session, urls[0], body, key="k")
        assert got == status and fragment in problem["detail"]
        assert headers["Content-Type"].startswith("application/problem+json")
        assert await stored(session, urls[0]) == []
        assert (await post(session, urls[0], ORDER, key="k"))[0] == 201  # the key is unused


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "tab\there"])
async def test_a_malformed_idempotency_key_is_400(redis_server, key):
    async with replicas(redis_server.url) as urls, aiohttp.ClientSession() as session:
        status, problem, _ = await post(session, urls[0], ORDER, key=key)
        assert status == 400 and "Idempotency-Key" in problem["detail"]


@pytest.mark.parametrize(
    ("query", "status"),
    [("since=-1", 400), ("since=x", 400), ("limit=0", 400), ("limit=10001", 400), ("", 200)],
)
async def test_listing_validates_its_cursor(redis_server, query, status):
    async with replicas(redis_server.url) as urls, aiohttp.ClientSession() as session:
        got, content_type = await get(session, f"{urls[0]}/orders?{query}")
        assert got == status
        assert status == 200 or content_type == "application/problem+json"


async def test_unknown_order_is_404(redis_server):
    async with replicas(redis_server.url) as urls, aiohttp.ClientSession() as session:
        assert await get(session, f"{urls[0]}/orders/nope") == (404, "application/problem+json")


async def test_redis_down_is_503_problem_json(private_redis):
    async with replicas(private_redis.url) as urls, aiohttp.ClientSession() as session:
        assert (await post(session, urls[0], ORDER, key="k"))[0] == 201
        private_redis.stop()
        for key in ("k", "k2", None):
            status, _, headers = await post(session, urls[0], ORDER, key=key)
            assert status == 503 and headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orders", "redis"], "--orders redis needs --redis-url"),
        (["--lose-response-rate", "2"], "lose_response_rate must be between 0 and 1"),
        (
            ["--orders", "redis", "--redis-url", "redis://127.0.0.1:1", "--idempotency-ttl", "0"],
            "must be > 0",
        ),
    ],
)
def test_command_line_errors_are_one_line(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "services.api", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
