"""Record every request Locust makes (time, name, status, latency, replica) to a CSV file.

Locust's own stats do not break successes down by status code, and its stats CSV
is written by a 1 s poller that can miss the tail; the engine computes every
number it reports from this file instead. Import it from a locustfile; it is
inert unless LAB_EVENTS_FILE names the output file (so by-hand runs are unaffected).
The replica is the response's X-Replica header (which api replica answered), empty
when there was none: the load balancing lab counts each replica's share from it.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Sequence

from locust import events

EVENTS_FILE_ENV = "LAB_EVENTS_FILE"
REPLICA_HEADER = "X-Replica"
_rows: list[tuple[float, str, int, float, str]] = []


@events.request.add_listener
def _record(name, response_time, response=None, exception=None, start_time=None, **_kw):
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and not status:
        status = 0
    started = start_time if start_time is not None else time.time() - response_time / 1000
    _rows.append((started, name, int(status), float(response_time), _replica(response)))


def _replica(response) -> str:
    """The answering replica's name; "" without a response or the header."""
    try:
        return response.headers.get(REPLICA_HEADER) or ""
    except AttributeError:
        return ""


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV atomically: the engine never reads a half-written file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def write_csv_beside_events(
    name: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """A locustfile's own CSV (`name`) next to the events file; nothing when the engine
    is not recording (a run by hand)."""
    events_file = os.environ.get(EVENTS_FILE_ENV)
    if events_file:
        write_csv(os.path.join(os.path.dirname(events_file), name), header, rows)


@events.quitting.add_listener
def _write(**_kw):
    path = os.environ.get(EVENTS_FILE_ENV)
    if path:
        header = ["start_s", "name", "status", "response_ms", "replica"]
        write_csv(path, header, ((f"{t:.6f}", n, s, f"{ms:.3f}", r) for t, n, s, ms, r in _rows))
