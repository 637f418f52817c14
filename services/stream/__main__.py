"""Run the stream service alone: python -m services.stream --port 8001 [--interval-ms 200]
[--stream-events 15] [--heartbeat-ms 2000] [--retry-ms 3000] [--first-event-ms 1000]"""

from __future__ import annotations

import argparse
import sys

from services.common.server import add_server_arguments, fail, serve, server_argument_error
from services.stream.app import StreamConfig, create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.stream", description=__doc__)
    add_server_arguments(parser, replica_id="stream-1", seed_help="unused (no randomness)")
    parser.add_argument("--interval-ms", type=float, default=1000.0, help="the feed's period")
    parser.add_argument(
        "--stream-events", type=int, default=0, help="events per stream, then it ends (0 = never)"
    )
    parser.add_argument(
        "--heartbeat-ms", type=float, default=0.0, help="SSE comment after this quiet (0 = off)"
    )
    parser.add_argument(
        "--first-event-ms",
        type=float,
        default=0.0,
        help="a subscription's (?since=) first event after its start (0 = --interval-ms)",
    )
    parser.add_argument(
        "--retry-ms", type=int, default=3000, help="reconnection delay advised to SSE clients"
    )
    return parser.parse_args(argv)


def config_error(args: argparse.Namespace) -> str | None:
    if args.interval_ms <= 0:
        return "--interval-ms must be > 0"
    if min(args.stream_events, args.heartbeat_ms, args.retry_ms, args.first_event_ms) < 0:
        return "--stream-events, --heartbeat-ms, --retry-ms and --first-event-ms must be >= 0"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if error := server_argument_error(args) or config_error(args):
        return fail("stream", error)
    config = StreamConfig(
        replica_id=args.replica_id,
        interval_s=args.interval_ms / 1000,
        stream_events=args.stream_events,
        heartbeat_s=args.heartbeat_ms / 1000,
        first_event_s=args.first_event_ms / 1000,
        retry_ms=args.retry_ms,
    )
    return serve("stream", create_app(config), args)


if __name__ == "__main__":
    sys.exit(main())
