"""Run the api alone: python -m services.api --port 8001 [--keepalive-timeout 1.0] ..."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from services.api import ratelimit
from services.api.app import ApiConfig, create_app
from services.api.faults import FaultError, Faults


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--replica-id", default="api-1", help="name reported in X-Replica")
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        help="seconds an idle keep-alive connection stays open (default 75)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="injected latency")
    parser.add_argument("--error-status", type=int, default=0, help="injected error status")
    parser.add_argument("--error-rate", type=float, default=1.0, help="share of requests failed")
    parser.add_argument("--max-concurrent", type=int, default=0, help="503 above this many")
    parser.add_argument("--seed", type=int, default=None, help="seed for injected randomness")
    parser.add_argument("--shutdown-timeout", type=float, default=5.0, help="drain time on stop")
    ratelimit.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"api: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    if args.keepalive_timeout <= 0:
        print("api: error: --keepalive-timeout must be > 0", file=sys.stderr)
        return 2
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            error_status=args.error_status,
            error_rate=args.error_rate,
            max_concurrent=args.max_concurrent,
        )
        limits = ratelimit.config_from_args(args)
    except (FaultError, ValueError) as exc:
        print(f"api: error: {exc}", file=sys.stderr)
        return 2
    config = ApiConfig(
        replica_id=args.replica_id,
        keepalive_timeout_s=args.keepalive_timeout,
        faults=faults,
        seed=args.seed,
        ratelimit=limits,
    )
    try:
        web.run_app(
            create_app(config),
            host=args.host,
            port=args.port,
            keepalive_timeout=args.keepalive_timeout,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None,
            print=lambda _: print(
                f"api {args.replica_id} listening on http://{args.host}:{args.port}", flush=True
            ),
        )
    except OSError as exc:
        print(
            f"api: error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
