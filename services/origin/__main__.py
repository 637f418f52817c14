"""Run the origin alone: python -m services.origin --port 8001 [--compute-ms 400]
[--jitter-ms 100] [--max-age-s 2] [--stale-while-revalidate-s 0] [--stale-if-error-s 0]
[--cache redis --redis-url URL [--single-flight lock]]"""

from __future__ import annotations

import argparse
import sys

from services.common.server import add_server_arguments, fail, serve, server_argument_error
from services.origin.app import OriginConfig, create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.origin", description=__doc__)
    add_server_arguments(parser, replica_id="origin-1", seed_help="seed for the compute jitter")
    parser.add_argument("--compute-ms", type=float, default=400.0, help="one computation")
    parser.add_argument("--jitter-ms", type=float, default=100.0, help="+- around it")
    parser.add_argument("--max-age-s", type=int, default=2, help="Cache-Control max-age")
    parser.add_argument("--stale-while-revalidate-s", type=int, default=0, help="0 = none")
    parser.add_argument("--stale-if-error-s", type=int, default=0, help="0 = none")
    parser.add_argument(
        "--cache", choices=("none", "redis"), default="none", help="cache-aside in Redis"
    )
    parser.add_argument("--redis-url", default="", help="Redis for --cache redis")
    parser.add_argument(
        "--single-flight", choices=("off", "lock"), default="off", help="one computation at a time"
    )
    parser.add_argument("--lock-ms", type=int, default=2000, help="single-flight lock's TTL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    numbers = (args.compute_ms, args.jitter_ms, args.max_age_s, args.stale_while_revalidate_s,
               args.stale_if_error_s)  # fmt: skip
    if error := server_argument_error(args):
        return fail("origin", error)
    if min(numbers) < 0 or args.jitter_ms > args.compute_ms:
        return fail("origin", "times must be >= 0 and --jitter-ms <= --compute-ms")
    if args.cache == "redis" and not args.redis_url:
        return fail("origin", "--cache redis needs --redis-url")
    if args.lock_ms <= 0:
        return fail("origin", "--lock-ms must be > 0")
    config = OriginConfig(
        replica_id=args.replica_id,
        compute_ms=args.compute_ms,
        jitter_ms=args.jitter_ms,
        max_age_s=args.max_age_s,
        stale_while_revalidate_s=args.stale_while_revalidate_s,
        stale_if_error_s=args.stale_if_error_s,
        seed=args.seed,
        redis_url=args.redis_url if args.cache == "redis" else "",
        single_flight=args.single_flight == "lock",
        lock_ms=args.lock_ms,
    )
    return serve("origin", create_app(config), args)


if __name__ == "__main__":
    sys.exit(main())
