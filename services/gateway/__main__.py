"""Run the gateway: python -m services.gateway --port 8000 --api-url http://127.0.0.1:8001 ...

Downstreams are given as URLs (several replicas comma-separated); each gets its own
connection pool and the retry policy set by the --retry-* options.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from services.gateway.app import (
    BudgetConfig,
    DownstreamConfig,
    GatewayConfig,
    Timeouts,
    create_app,
)
from services.gateway.retry import STRATEGIES, RetryPolicy

DOWNSTREAMS = {
    # option: (downstream name, gateway routes)
    "api_url": ("api", ("/work",)),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.gateway", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--replica-id", default="gateway-1", help="name reported in X-Gateway")
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        help="seconds an idle keep-alive connection from nginx stays open (default 75)",
    )
    parser.add_argument("--shutdown-timeout", type=float, default=5.0, help="drain time on stop")
    parser.add_argument("--seed", type=int, default=None, help="seed for the backoff jitter")
    parser.add_argument("--api-url", help="api replicas (comma-separated): GET/POST /work")

    retry = parser.add_argument_group("retries (every downstream)")
    retry.add_argument("--retry-strategy", default="none", choices=STRATEGIES)
    retry.add_argument("--retry-max-attempts", type=int, default=3, help="first one included")
    retry.add_argument("--retry-base", type=float, default=0.1, help="first backoff, seconds")
    retry.add_argument("--retry-cap", type=float, default=2.0, help="longest backoff, seconds")
    retry.add_argument("--retry-deadline", type=float, default=5.0, help="whole call, seconds")
    retry.add_argument(
        "--retry-after",
        choices=("on", "off"),
        default="on",
        help="wait at least a response's Retry-After (default on)",
    )
    retry.add_argument("--budget", choices=("on", "off"), default="off", help="retry budget")
    retry.add_argument("--budget-ratio", type=float, default=0.1, help="retries per request")
    retry.add_argument("--budget-min-per-s", type=float, default=1.0, help="retries always ok")
    retry.add_argument("--budget-window", type=float, default=10.0, help="seconds counted")

    conn = parser.add_argument_group("connections (every downstream)")
    conn.add_argument("--connect-timeout", type=float, default=1.0, help="seconds; 0 = none")
    conn.add_argument("--read-timeout", type=float, default=0.0, help="seconds; 0 = none")
    conn.add_argument("--attempt-timeout", type=float, default=0.0, help="seconds; 0 = deadline")
    conn.add_argument("--max-connections", type=int, default=100, help="pool size; 0 = no limit")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> GatewayConfig:
    """Raises ValueError with a one-line reason for a bad combination of options."""
    policy = RetryPolicy(
        strategy=args.retry_strategy,
        max_attempts=args.retry_max_attempts,
        base_s=args.retry_base,
        cap_s=args.retry_cap,
        deadline_s=args.retry_deadline,
        honour_retry_after=args.retry_after == "on",
        attempt_timeout_s=args.attempt_timeout or None,
    )
    budget = None
    if args.budget == "on":
        budget = BudgetConfig(args.budget_ratio, args.budget_min_per_s, args.budget_window)
        budget.build()  # validates
    timeouts = Timeouts(connect_s=args.connect_timeout or None, read_s=args.read_timeout or None)
    downstreams = []
    for option, (name, routes) in DOWNSTREAMS.items():
        value = getattr(args, option)
        if not value:
            continue
        urls = tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())
        downstreams.append(
            DownstreamConfig(
                name=name,
                urls=urls,
                routes=routes,
                policy=policy,
                budget=budget,
                timeouts=timeouts,
                max_connections=args.max_connections,
            )
        )
    if not downstreams:
        raise ValueError("give at least one downstream, e.g. --api-url http://127.0.0.1:8001")
    return GatewayConfig(
        replica_id=args.replica_id,
        downstreams=tuple(downstreams),
        keepalive_timeout_s=args.keepalive_timeout,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"gateway: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    if args.keepalive_timeout <= 0:
        print("gateway: error: --keepalive-timeout must be > 0", file=sys.stderr)
        return 2
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2
    try:
        web.run_app(
            create_app(config),
            host=args.host,
            port=args.port,
            keepalive_timeout=args.keepalive_timeout,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None,
            print=lambda _: print(
                f"gateway {args.replica_id} listening on http://{args.host}:{args.port}",
                flush=True,
            ),
        )
    except OSError as exc:
        print(
            f"gateway: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
