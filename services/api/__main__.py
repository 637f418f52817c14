"""Run the api alone: python -m services.api --port 8001 [--keepalive-timeout 1.0] ..."""

from __future__ import annotations

import argparse
import sys

from services.api import orders, ratelimit, release, workpool
from services.api.app import ApiConfig, create_app
from services.api.faults import FaultError, Faults
from services.common.server import add_server_arguments, fail, serve, server_argument_error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.api", description=__doc__)
    add_server_arguments(parser, replica_id="api-1", seed_help="seed for injected randomness")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="injected latency")
    parser.add_argument("--error-status", type=int, default=0, help="injected error status")
    parser.add_argument("--error-rate", type=float, default=1.0, help="share of requests failed")
    parser.add_argument("--tail-rate", type=float, default=0.0, help="share of slow requests")
    parser.add_argument("--tail-factor", type=float, default=20.0, help="their latency x this")
    parser.add_argument("--max-concurrent", type=int, default=0, help="503 above this many")
    ratelimit.add_arguments(parser)
    orders.add_arguments(parser)
    workpool.add_arguments(parser)
    release.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if error := server_argument_error(args):
        return fail("api", error)
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            error_status=args.error_status,
            error_rate=args.error_rate,
            max_concurrent=args.max_concurrent,
            tail_rate=args.tail_rate,
            tail_factor=args.tail_factor,
            lose_response_rate=args.lose_response_rate,
            lose_response_ms=args.lose_response_ms,
        )
        limits = ratelimit.config_from_args(args)
        orders_config = orders.config_from_args(args)
        pool = workpool.config_from_args(args)
        release_config = release.config_from_args(args)
    except (FaultError, ValueError) as exc:
        return fail("api", str(exc))
    config = ApiConfig(
        replica_id=args.replica_id,
        keepalive_timeout_s=args.keepalive_timeout,
        faults=faults,
        seed=args.seed,
        ratelimit=limits,
        orders=orders_config,
        pool=pool,
        release=release_config,
    )
    return serve("api", create_app(config), args)


if __name__ == "__main__":
    sys.exit(main())
