"""The in-memory token bucket with injected time (no sleeping), and the limiter's CLI.

The Redis limiter is tested against a real redis-server in tests/service/test_ratelimit.py.
"""

from __future__ import annotations

import argparse
import random

import pytest

from labs.engine.errors import LabError
from labs.engine.topology import parts
from labs.engine.topology.local import _belongs_to
from services.api import ratelimit
from services.api.ratelimit import LocalLimiter, TokenBucket


def test_a_new_bucket_admits_its_capacity_at_once_then_refuses_with_the_wait():
    bucket = TokenBucket(rate=10, capacity=5)
    assert [bucket.take(100.0).allowed for _ in range(6)] == [True] * 5 + [False]
    refused = bucket.take(100.0)
    assert refused.retry_after_s == pytest.approx(0.1)  # one token at 10/s
    assert bucket.take(100.05).retry_after_s == pytest.approx(0.05)
    assert bucket.take(100.1).allowed
    assert not bucket.take(100.1).allowed


def test_the_bucket_refills_at_its_rate_but_never_beyond_capacity():
    bucket = TokenBucket(rate=2, capacity=3)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(1.0).allowed and bucket.take(1.0).allowed  # 2 tokens in 1 s
    assert not bucket.take(1.0).allowed
    # an hour idle refills to capacity (3), not to 7200
    assert [bucket.take(3601.0).allowed for _ in range(4)] == [True, True, True, False]


def test_a_clock_going_backwards_refills_nothing():
    bucket = TokenBucket(rate=1, capacity=1)
    assert bucket.take(50.0).allowed
    assert not bucket.take(40.0).allowed
    assert not bucket.take(50.5).allowed
    assert bucket.take(51.0).allowed


@pytest.mark.parametrize("seed", range(5))
def test_no_window_ever_admits_more_than_capacity_plus_rate_times_its_length(seed):
    """Seeded random arrivals (bursts and gaps): in every window [a, b] of arrivals the
    bucket admits at most capacity + rate * (b - a), and under sustained overload it
    admits the rate."""
    rng = random.Random(seed)
    rate, capacity = 20.0, 5
    bucket = TokenBucket(rate, capacity)
    now, admitted = 0.0, []
    for _ in range(4000):
        now += rng.choice([0.0, 0.0, 0.001, 0.004, rng.expovariate(300)])
        if bucket.take(now).allowed:
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            if admitted[j] - start > 1.0:
                break
            assert j - i + 1 <= capacity + rate * (admitted[j] - start) + 1e-9
    assert len(admitted) == pytest.approx(capacity + rate * now, rel=0.02)


async def test_local_limiter_keeps_one_bucket_per_tenant():
    clock = iter([0.0] * 20).__next__
    limiter = LocalLimiter(rate=1, burst=2, clock=clock)
    noisy = [(await limiter.acquire("key:noisy")).allowed for _ in range(3)]
    quiet = [(await limiter.acquire("key:quiet")).allowed for _ in range(2)]
    assert noisy == [True, True, False]
    assert quiet == [True, True]


async def test_local_limiter_forgets_full_buckets_to_bound_memory(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_LOCAL_TENANTS", 3)
    now = [0.0]
    limiter = LocalLimiter(rate=1, burst=1, clock=lambda: now[0])
    for tenant in ("a", "b", "c"):
        await limiter.acquire(tenant)
    now[0] = 10.0  # all three refilled: forgettable
    await limiter.acquire("d")
    assert set(limiter.buckets) == {"d"}


def test_invalid_limits_are_rejected():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)
    with pytest.raises(ValueError):
        LocalLimiter(rate=5, burst=0)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ratelimit.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_builds_the_limiter_config():
    assert ratelimit.config_from_args(parse()) is None
    config = ratelimit.config_from_args(
        parse("--ratelimit", "redis", "--redis-url", "redis://127.0.0.1:1", "--ratelimit-rate",
              "20", "--ratelimit-burst", "4", "--ratelimit-on-error", "closed")
    )  # fmt: skip
    assert config == ratelimit.RateLimitConfig("redis", 20.0, 4, "redis://127.0.0.1:1", "closed")
    with pytest.raises(ValueError, match="needs --redis-url"):
        ratelimit.config_from_args(parse("--ratelimit", "redis"))
    with pytest.raises(ValueError, match="must be > 0"):
        ratelimit.config_from_args(parse("--ratelimit", "local", "--ratelimit-rate", "0"))


# --- the engine's Redis part and process lookup -------------------------------------------


def test_redis_part_is_loopback_only_and_never_persists(tmp_path):
    argv = parts.redis_argv(6399, tmp_path)
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options["--bind"] == "127.0.0.1"
    assert options["--port"] == "6399"
    assert options["--save"] == "" and options["--appendonly"] == "no"
    assert options["--dir"] == str(tmp_path)


def test_missing_redis_server_names_what_to_install(monkeypatch):
    monkeypatch.setenv("LAB_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(LabError, match="apt-get install redis-server"):
        parts.check_parts(("redis",))
    with pytest.raises(LabError, match="unknown part 'kafka'"):
        parts.check_parts(("kafka",))


def test_fault_targets_match_a_service_replicas_or_a_part_by_name():
    assert _belongs_to("api-2", "api") and _belongs_to("redis", "redis")
    assert not _belongs_to("api-gateway-1", "api") and not _belongs_to("nginx", "api")
    assert _belongs_to("api-gateway-1", "api-gateway")
