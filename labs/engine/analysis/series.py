"""Series for plots: a variant's measurements as {label: (seconds, values)}.

Labs build their `Plot.series` callables from these, so every report uses the
same arithmetic: rates are per second whatever the bucket size, empty buckets
have no latency (NaN, drawn as a gap, not as 0 ms), counters scraped from
/metrics become per-second increases summed over replicas. For example:

    Plot("Breaker state", "0 closed, 1 half-open, 2 open",
         lambda r: S.gauge(r, "gateway", "breaker_state"), "step")
    Plot("Upstream attempts", "attempts/s",
         lambda r: S.counter_rate(r, "gateway", "upstream_attempts_total", by="outcome"))
    Plot("502s per 100 ms, as a rate", "responses/s",
         lambda r: S.rate_by_code(r, bucket_s=0.1))
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from labs.engine.analysis import windows
from labs.engine.analysis.metrics import VariantResult, status_class
from labs.engine.model.spec import Series

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
    """Latency percentiles (of 50, 95, 99) per bucket in ms, NaN where a bucket had
    no request."""
    buckets = result.buckets(bucket_s)
    xs = [b.t_s for b in buckets]
    return {
        f"p{pct}": (xs, [getattr(b, f"p{pct}_ms") if b.requests else math.nan for b in buckets])
        for pct in percentiles
    }


def nginx_retries(result: VariantResult) -> Series:
    """Requests per second that nginx sent upstream more than once (from its access log)."""
    data = result.nginx_series
    return {"upstream retries": (data["t_s"], data["retried"])} if "retried" in data else {}


def nginx_errors(result: VariantResult) -> Series:
    """nginx error-log events per second, by kind ("connection reset", ...)."""
    data = result.nginx_series
    return {
        name.removeprefix("error.").replace("_", " "): (data["t_s"], values)
        for name, values in data.items()
        if name.startswith("error.")
    }


NOT_TRAFFIC = ("/healthz", "/readyz", "/metrics")


def service_responses(result: VariantResult) -> Series:
    """What the services themselves answered per second, by status (their /metrics),
    without health checks and admin calls: the backend's side of the story."""
    services = sorted({str(s["service"]) for s in result.scrapes})
    merged: dict[str, tuple[list[float], list[float]]] = {}
    for service in services:
        rates = counter_rate(
            result,
            service,
            "http_requests_total",
            by="status",
            where=lambda labels: (
                labels.get("route", "") not in NOT_TRAFFIC
                and not labels.get("route", "").startswith("/admin/")
            ),
        )
        for status, (xs, ys) in rates.items():
            merged[f"{service} {status}" if len(services) > 1 else status] = (list(xs), list(ys))
    return merged


_SAMPLE = re.compile(r"^(?P<name>[^{]+)(?:\{(?P<labels>.*)\})?$")


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """'name{a=x,b=y}' -> ('name', {'a': 'x', 'b': 'y'}) (the scrape store's sample keys)."""
    match = _SAMPLE.match(key)
    if not match:
        return key, {}
    pairs = (item.split("=", 1) for item in (match["labels"] or "").split(",") if "=" in item)
    return match["name"], dict(pairs)


LabelFilter = Callable[[Mapping[str, str]], bool]


def _matching(
    result: VariantResult,
    service: str,
    metric: str,
    labels: Mapping[str, str],
    where: LabelFilter | None = None,
) -> Iterable[tuple[float, int, dict[str, str], float]]:
    for scrape in result.scrapes:
        if scrape["service"] != service:
            continue
        for key, value in _mapping(scrape["samples"]).items():
            name, sample_labels = parse_key(key)
            if name != metric or (where is not None and not where(sample_labels)):
                continue
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                yield (
                    _number(scrape["t_s"]),
                    int(_number(scrape["replica"])),
                    sample_labels,
                    _number(value),
                )


def counter_rate(
    result: VariantResult,
    service: str,
    metric: str,
    by: str | None = None,
    where: LabelFilter | None = None,
    **labels: str,
) -> Series:
    """Per-second increase of a counter between scrapes, summed over replicas (and
    over label values other than `by`), at the start of each interval (like a
    bucket's t_s). Filter samples by exact `labels` or a `where` predicate. A
    counter that goes down (a restarted replica) counts from zero again."""
    points: dict[tuple[str, int, str], list[tuple[float, float]]] = defaultdict(list)
    for t_s, replica, sample_labels, value in _matching(result, service, metric, labels, where):
        group = sample_labels.get(by, "") if by else metric
        identity = ",".join(f"{k}={v}" for k, v in sorted(sample_labels.items()))
        points[(group, replica, identity)].append((t_s, value))
    summed: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for (group, _, _), samples in points.items():
        samples.sort()
        for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
            if t1 > t0:
                summed[group][t0] += (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)
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
    """(start, end) seconds of each fault, for shading (see windows.fault_windows)."""
    return [(w.start_s, w.end_s) for w in windows.fault_windows(result)]


def fault_labels(result: VariantResult) -> list[tuple[float, str]]:
    """(start s, label) of each fault event that begins a phase: every fault window, and
    a "start" (the service is back). The label is the step's own (FaultStep.label), or
    the service and its action ("api kill") or the settings it set ("api latency_ms")."""
    labels = []
    for event in (e for e in result.events if e.get("what") == "fault"):
        action = event.get("action", "settings")
        settings = _mapping(event.get("settings"))
        if action == "settings" and not any(settings.values()):
            continue  # clears a fault: no phase begins
        if action not in ("settings", "start", "kill", "stop", "remove", "move", "reload"):
            continue  # e.g. `lab fault clear`
        label = str(event.get("label") or "")
        if not label:
            target = f"{event.get('service')}"
            if event.get("replica") is not None:
                target += f"[{event.get('replica')}]"
            what = (
                ", ".join(k for k, v in settings.items() if v) if action == "settings" else action
            )
            label = f"{target} {what}"
        labels.append((max(0.0, _number(event.get("t_s"))), label))
    return labels


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0
