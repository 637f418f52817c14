"""What every service's command line shares: where it listens, how long an idle
keep-alive connection stays open (always explicit: aiohttp's defaults differ
between run_app and AppRunner), how long it drains on stop and how
(services.common.shutdown), and serving until SIGTERM with one-line errors
instead of tracebacks."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from services.common import shutdown


def add_server_arguments(
    parser: argparse.ArgumentParser, *, replica_id: str, seed_help: str
) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--replica-id", default=replica_id, help="name reported in responses")
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=75.0,
        help="seconds an idle keep-alive connection stays open (default 75)",
    )
    parser.add_argument("--shutdown-timeout", type=float, default=5.0, help="drain time on stop")
    shutdown.add_arguments(parser)
    parser.add_argument("--seed", type=int, default=None, help=seed_help)


def server_argument_error(args: argparse.Namespace) -> str | None:
    if not 0 < args.port < 65536:
        return f"--port must be 1-65535, got {args.port}"
    if args.keepalive_timeout <= 0:
        return "--keepalive-timeout must be > 0"
    if args.shutdown_mode == "drain" and args.shutdown_timeout <= 0:
        return "--shutdown-mode drain needs --shutdown-timeout > 0"
    return None


def fail(service: str, message: str) -> int:
    print(f"{service}: error: {message}", file=sys.stderr)
    return 2


def serve(service: str, app: web.Application, args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, stopping as --shutdown-mode says; exit status."""

    def announce() -> None:
        url = f"http://{args.host}:{args.port}"
        print(f"{service} {args.replica_id} listening on {url}", flush=True)

    try:
        if args.shutdown_mode == "drain":
            asyncio.run(shutdown.serve_draining(app, args, announce))
            return 0
        if args.shutdown_mode == "immediate":
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a service with no handler at all
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            keepalive_timeout=args.keepalive_timeout,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None,
            handle_signals=args.shutdown_mode == "default",
            print=lambda _: announce(),
        )
    except OSError as exc:
        return fail(service, f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    return 0
