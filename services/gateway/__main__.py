"""Run the gateway: python -m services.gateway --port 8000 --api-url http://127.0.0.1:8001 ...

Downstreams are given as URLs (several replicas comma-separated); each gets its own
connection pool and the retry policy set by the --retry-* options.
"""

from __future__ import annotations

import argparse
import sys

from services.common.server import add_server_arguments, fail, serve, server_argument_error
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
    add_server_arguments(parser, replica_id="gateway-1", seed_help="seed for the backoff jitter")
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
    if error := server_argument_error(args):
        return fail("gateway", error)
    try:
        config = build_config(args)
    except ValueError as exc:
        return fail("gateway", str(exc))
    return serve("gateway", create_app(config), args)


if __name__ == "__main__":
    sys.exit(main())
