"""Run the gateway: python -m services.gateway --port 8000 --api-url http://127.0.0.1:8001 ...

Downstreams are given as URLs (several replicas comma-separated). The policy options
(retries, timeouts, pool, bulkhead, breaker) apply to every downstream;
`--NAME-policy KEY=VALUE,...` overrides them for one downstream, with the same option
names without the dashes, e.g. `--payments-policy max-in-flight=10,breaker=on`.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys

from services.common.server import add_server_arguments, fail, serve, server_argument_error
from services.gateway import adaptive
from services.gateway.app import create_app
from services.gateway.breaker import BreakerConfig
from services.gateway.config import POOLS, BudgetConfig, DownstreamConfig, GatewayConfig, Timeouts
from services.gateway.deadline import DEADLINE_HEADER, DeadlineConfig
from services.gateway.hedge import HedgeConfig
from services.gateway.retry.policy import STRATEGIES, RetryPolicy

DOWNSTREAMS = {
    # name: gateway routes (GET and POST), each calling the downstream's /work
    "api": ("/work",),
    "payments": ("/checkout",),
    "catalog": ("/catalog",),
}
NO_DEADLINE_S = 86_400.0
"""What `--retry-deadline 0` means: a day, i.e. the gateway waits as long as it takes."""


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """The options a downstream's policy is built from (and `--NAME-policy` may override)."""
    retry = parser.add_argument_group("retries")
    retry.add_argument("--retry-strategy", default="none", choices=STRATEGIES)
    retry.add_argument("--retry-max-attempts", type=int, default=3, help="first one included")
    retry.add_argument("--retry-base", type=float, default=0.1, help="first backoff, seconds")
    retry.add_argument("--retry-cap", type=float, default=2.0, help="longest backoff, seconds")
    retry.add_argument(
        "--retry-deadline", type=float, default=5.0, help="whole call, seconds; 0 = none"
    )
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

    conn = parser.add_argument_group("connections")
    conn.add_argument("--connect-timeout", type=float, default=1.0, help="seconds; 0 = none")
    conn.add_argument("--read-timeout", type=float, default=0.0, help="seconds; 0 = none")
    conn.add_argument("--attempt-timeout", type=float, default=0.0, help="seconds; 0 = deadline")
    conn.add_argument(
        "--max-connections",
        type=int,
        default=100,
        help="pool size (the shared pool's with --pool shared); 0 = no limit",
    )
    conn.add_argument(
        "--max-in-flight", type=int, default=0, help="bulkhead: calls in flight; 0 = no bulkhead"
    )

    hedge = parser.add_argument_group("hedged requests (services.gateway.hedge)")
    hedge.add_argument("--hedge", choices=("on", "off"), default="off")
    hedge.add_argument(
        "--hedge-delay-ms", type=float, default=50.0, help="first copy's time before the hedge"
    )
    hedge.add_argument("--hedge-budget", choices=("on", "off"), default="on")
    hedge.add_argument("--hedge-budget-ratio", type=float, default=0.1, help="hedges per call")
    hedge.add_argument("--hedge-budget-tokens", type=float, default=10.0, help="largest burst")

    breaker = parser.add_argument_group("circuit breaker")
    breaker.add_argument("--breaker", choices=("on", "off"), default="off")
    breaker.add_argument("--breaker-fail-max", type=int, default=5, help="failures in a row")
    breaker.add_argument(
        "--breaker-reset-timeout", type=float, default=5.0, help="seconds open before a trial"
    )
    breaker.add_argument("--breaker-half-open-calls", type=int, default=1, help="concurrent trials")
    breaker.add_argument(
        "--breaker-success-threshold", type=int, default=1, help="trials that close it"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.gateway", description=__doc__)
    add_server_arguments(parser, replica_id="gateway-1", seed_help="seed for the backoff jitter")
    for name, routes in DOWNSTREAMS.items():
        parser.add_argument(
            f"--{name}-url", help=f"{name} replicas (comma-separated): {', '.join(routes)}"
        )
        parser.add_argument(
            f"--{name}-policy",
            default="",
            metavar="KEY=VALUE,...",
            help=f"policy options for {name} only",
        )
        parser.add_argument(
            f"--{name}-path", default="/work", help=f"path called on {name} (default /work)"
        )
    parser.add_argument(
        "--pool",
        choices=POOLS,
        default="per-downstream",
        help="one connection pool per downstream, or one shared by all",
    )
    deadline = parser.add_argument_group("deadline propagation (services.gateway.deadline)")
    deadline.add_argument(
        "--deadline-propagation",
        choices=("on", "off"),
        default="off",
        help=f"read the caller's budget ({DEADLINE_HEADER}) and pass what is left downstream",
    )
    deadline.add_argument(
        "--deadline-margin-ms", type=float, default=0.0, help="kept back from the budget here"
    )
    deadline.add_argument(
        "--min-budget-ms", type=float, default=0.0, help="less left: 504 without calling"
    )
    add_policy_arguments(parser)
    adaptive.add_arguments(parser)
    return parser.parse_args(argv)


def policy_args(args: argparse.Namespace, overrides: str) -> argparse.Namespace:
    """`args` with one downstream's `KEY=VALUE,...` overrides applied (ValueError: bad)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_policy_arguments(parser)
    argv: list[str] = []
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        key, sep, value = item.partition("=")
        option = f"--{key.strip()}"
        if not sep or option not in parser._option_string_actions:
            raise ValueError(f"policy override {item!r}: expected KEY=VALUE with a policy option")
        argv += [option, value.strip()]
    try:
        # Options already in the namespace keep their values; the overrides replace them.
        merged, extra = parser.parse_known_args(argv, namespace=copy.copy(args))
    except argparse.ArgumentError as exc:
        raise ValueError(f"policy override: {exc}") from None
    if extra:
        raise ValueError(f"policy override: cannot parse {' '.join(extra)}")
    return merged


def downstream_config(
    name: str, urls: tuple[str, ...], args: argparse.Namespace, path: str = "/work"
) -> DownstreamConfig:
    policy = RetryPolicy(
        strategy=args.retry_strategy,
        max_attempts=args.retry_max_attempts,
        base_s=args.retry_base,
        cap_s=args.retry_cap,
        deadline_s=args.retry_deadline or NO_DEADLINE_S,
        honour_retry_after=args.retry_after == "on",
        attempt_timeout_s=args.attempt_timeout or None,
    )
    budget = None
    if args.budget == "on":
        budget = BudgetConfig(args.budget_ratio, args.budget_min_per_s, args.budget_window)
    breaker = None
    if args.breaker == "on":
        breaker = BreakerConfig(
            name=name,
            fail_max=args.breaker_fail_max,
            reset_timeout_s=args.breaker_reset_timeout,
            half_open_max_calls=args.breaker_half_open_calls,
            success_threshold=args.breaker_success_threshold,
        )
    hedge = None
    if args.hedge == "on":
        hedge = HedgeConfig(
            delay_s=args.hedge_delay_ms / 1000,
            budget_ratio=args.hedge_budget_ratio if args.hedge_budget == "on" else None,
            budget_max_tokens=args.hedge_budget_tokens,
        )
    return DownstreamConfig(
        name=name,
        urls=urls,
        path=path,
        routes=DOWNSTREAMS[name],
        policy=policy,
        budget=budget,
        timeouts=Timeouts(connect_s=args.connect_timeout or None, read_s=args.read_timeout or None),
        max_connections=args.max_connections,
        max_in_flight=args.max_in_flight,
        breaker=breaker,
        hedge=hedge,
    )


def build_config(args: argparse.Namespace) -> GatewayConfig:
    """Raises ValueError with a one-line reason for a bad combination of options."""
    downstreams = []
    for name in DOWNSTREAMS:
        value = getattr(args, f"{name}_url")
        if not value:
            continue
        urls = tuple(u.strip().rstrip("/") for u in value.split(",") if u.strip())
        own = policy_args(args, getattr(args, f"{name}_policy"))
        path = getattr(args, f"{name}_path")
        if not path.startswith("/"):
            raise ValueError(f"--{name}-path must start with /; got {path!r}")
        downstreams.append(downstream_config(name, urls, own, path))
    if not downstreams:
        raise ValueError("give at least one downstream, e.g. --api-url http://127.0.0.1:8001")
    return GatewayConfig(
        replica_id=args.replica_id,
        downstreams=tuple(downstreams),
        keepalive_timeout_s=args.keepalive_timeout,
        seed=args.seed,
        pool=args.pool,
        shared_max_connections=args.max_connections,
        deadline=DeadlineConfig(
            propagate=args.deadline_propagation == "on",
            margin_s=args.deadline_margin_ms / 1000,
            min_budget_s=args.min_budget_ms / 1000,
        ),
        adaptive=adaptive.config_from(args),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if error := server_argument_error(args):
        return fail("gateway", error)
    try:
        config = build_config(args)
    except ValueError as exc:
        return fail("gateway", str(exc))
    # Breaker transitions are logged (INFO; opening at WARNING) to the process's stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return serve("gateway", create_app(config), args)


if __name__ == "__main__":
    sys.exit(main())
