"""nginx's logs as 1 s time series: upstream retries and error-log events by kind.

The totals (labs.engine.topology.nginx) say *whether* nginx retried or saw resets; these
series say *when*, so a plot can line them up with the client's errors and the
fault windows.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

from labs.engine.analysis.metrics import bucket_index
from labs.engine.topology.nginx import ERROR_KINDS

_ERROR_LINE = re.compile(r"^(?P<stamp>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<level>\w+)\]")
_SEVERE = ("error", "crit", "alert", "emerg")


def error_events(text: str) -> list[tuple[float, str]]:
    """(epoch seconds, kind) per error-log entry. nginx writes local time with whole
    seconds, so an event is known to within a second."""
    events = []
    for line in text.splitlines():
        header = _ERROR_LINE.match(line)
        if not header:
            continue
        kind = next((k for k, pattern in ERROR_KINDS if pattern.search(line)), None)
        if kind is None and header["level"] not in _SEVERE:
            continue
        epoch = time.mktime(time.strptime(header["stamp"], "%Y/%m/%d %H:%M:%S"))
        events.append((epoch, kind or "other"))
    return events


def retry_events(text: str) -> list[float]:
    """Epoch seconds ($msec, when the response was logged) of every request nginx
    sent upstream more than once."""
    times = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        tries = [t for t in re.split(r"[,:]", str(entry.get("upstream_status", ""))) if t.strip()]
        if len(tries) > 1:
            times.append(float(entry["t"]))
    return times


def nginx_series(
    error_log: str, access_log: str, origin_s: float, buckets: int
) -> dict[str, list[float]]:
    """{"t_s": [0, 1, ...], "retried": [...], "error.<kind>": [...]}, `buckets` long
    (the client series' length); events outside the run are dropped."""
    counts: dict[str, Counter[int]] = {"retried": Counter()}
    for epoch in retry_events(access_log):
        counts["retried"][bucket_index(epoch - origin_s, 1.0)] += 1
    for epoch, kind in error_events(error_log):
        # nginx truncates to the second: place the event in the middle of its second.
        index = bucket_index(epoch + 0.5 - origin_s, 1.0)
        counts.setdefault(f"error.{kind}", Counter())[index] += 1
    series: dict[str, list[float]] = {"t_s": [float(i) for i in range(buckets)]}
    for name, per_bucket in sorted(counts.items()):
        series[name] = [float(per_bucket.get(i, 0)) for i in range(buckets)]
    return series
