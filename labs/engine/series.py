"""Series for plots: a variant's measurements as {label: (seconds, values)}.

Labs build their `Plot.series` callables from these, so every report uses the
same arithmetic: rates are per second whatever the bucket size, empty buckets
have no latency (NaN, drawn as a gap, not as 0 ms), counters scraped from
/metrics become per-second increases summed over replicas.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from labs.engine.metrics import VariantResult, status_class
from labs.engine.spec import Series

CLASS_ORDER = ("2xx", "3xx", "4xx", "5xx", "no response")
ALWAYS_SHOWN = ("2xx", "5xx")
"""Drawn even at zero, so a fixed variant visibly has none."""


def rate_by_class(result: VariantResult, bucket_s: float = 1.0) -> Series:
    """Requests per second by status class ("2xx", "5xx", "no response", ...)."""
    buckets = result.buckets(bucket_s)
    xs = [b.t_s for b in buckets]
    present = {status_class(code) for code in result.status} | set(ALWAYS_SHOWN)
    return {
        label: (xs, [b.classes().get(label, 0) / bucket_s for b in buckets])
        for label in CLASS_ORDER
        if label in present
    }


def rate_by_code(result: VariantResult, bucket_s: float = 1.0, errors_only: bool = True) -> Series:
    """Responses per second by status code; `errors_only` leaves out 1xx-3xx."""
    buckets = result.buckets(bucket_s)
    xs = [b.t_s for b in buckets]
    codes = [c for c in result.status if not errors_only or not 100 <= int(c) < 400]
    return {
        (code if code != "0" else "no response"): (
            xs,
            [b.status.get(code, 0) / bucket_s for b in buckets],
        )
        for code in codes
    }


def latency(
    result: VariantResult, percentiles: Iterable[int] = (50, 95, 99), bucket_s: float = 1.0
) -> Series:
    """Latency percentiles per bucket in ms (NaN where a bucket had no request)."""
    buckets = result.buckets(bucket_s)
    xs = [b.t_s for b in buckets]
    return {
        f"p{pct}": (xs, [getattr(b, f"p{pct}_ms") if b.requests else math.nan for b in buckets])
        for pct in percentiles
    }


def nginx_events(result: VariantResult) -> Series:
    """nginx's upstream retries and error-log events per second, by kind."""
    data = result.nginx_series
    xs = data.get("t_s", [])
    labels = {"retried": "upstream retries"}
    return {
        labels.get(name, name.removeprefix("error.").replace("_", " ")): (xs, values)
        for name, values in data.items()
        if name != "t_s"
    }


_SAMPLE = re.compile(r"^(?P<name>[^{]+)(?:\{(?P<labels>.*)\})?$")


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """'name{a=x,b=y}' -> ('name', {'a': 'x', 'b': 'y'}) (the scrape store's sample keys)."""
    match = _SAMPLE.match(key)
    if not match:
        return key, {}
    pairs = (item.split("=", 1) for item in (match["labels"] or "").split(",") if "=" in item)
    return match["name"], dict(pairs)


def _matching(
    result: VariantResult, service: str, metric: str, labels: Mapping[str, str]
) -> Iterable[tuple[float, int, dict[str, str], float]]:
    for scrape in result.scrapes:
        if scrape["service"] != service:
            continue
        for key, value in scrape["samples"].items():  # type: ignore[union-attr]
            name, sample_labels = parse_key(key)
            if name == metric and all(sample_labels.get(k) == v for k, v in labels.items()):
                yield float(scrape["t_s"]), int(scrape["replica"]), sample_labels, float(value)


def counter_rate(
    result: VariantResult, service: str, metric: str, by: str | None = None, **labels: str
) -> Series:
    """Per-second increase of a counter between scrapes, summed over replicas (and
    over label values other than `by`). A counter that goes down (a restarted
    replica) counts from zero again."""
    points: dict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
    for t_s, replica, sample_labels, value in _matching(result, service, metric, labels):
        group = sample_labels.get(by, "") if by else metric
        identity = ",".join(f"{k}={v}" for k, v in sorted(sample_labels.items()))
        points[(group, replica, identity)].append((t_s, value))
    summed: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for (group, _, _), samples in points.items():
        samples.sort()
        for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
            if t1 > t0:
                summed[group][t1] += (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)
    return {
        group: (sorted(values), [values[t] for t in sorted(values)])
        for group, values in sorted(summed.items())
    }


def gauge(result: VariantResult, service: str, metric: str, **labels: str) -> Series:
    """A gauge's value at every scrape, one line per replica."""
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t_s, replica, _, value in _matching(result, service, metric, labels):
        lines[f"{service}-{replica + 1}"].append((t_s, value))
    return {
        label: ([t for t, _ in sorted(points)], [v for _, v in sorted(points)])
        for label, points in sorted(lines.items())
    }


def fault_windows(result: VariantResult) -> list[tuple[float, float]]:
    """(start, end) seconds of each fault: from a fault event to the next event on the
    same service and replica, or to the end of the run; `outage_s` ends on its own.
    An event whose settings are all zero clears the fault and opens no window."""
    end_of_run = result.duration_s
    faults = [e for e in result.events if e.get("what") == "fault"]
    windows = []
    for index, event in enumerate(faults):
        settings = event.get("settings") or {}
        if not any(settings.values()):  # type: ignore[union-attr]
            continue
        start = float(event["t_s"])  # type: ignore[arg-type]
        target = (event.get("service"), event.get("replica"))
        later = [
            float(e["t_s"])  # type: ignore[arg-type]
            for e in faults[index + 1 :]
            if (e.get("service"), e.get("replica")) == target
        ]
        end = later[0] if later else end_of_run
        outage = float(settings.get("outage_s") or 0)  # type: ignore[union-attr]
        if outage and all(not v for k, v in settings.items() if k != "outage_s"):  # type: ignore[union-attr]
            end = min(end, start + outage)
        windows.append((max(0.0, start), max(start, end)))
    return windows
