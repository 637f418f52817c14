"""Scrape every replica's Prometheus /metrics during the load.

The services count what only they can see (retries, breaker state, in-flight
requests, rate-limit rejections); scraping on a fixed interval turns those
counters and gauges into time series (labs.engine.analysis.series reads them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

SCRAPE_INTERVAL_S = 1.0
SKIPPED_SUFFIXES = ("_bucket", "_created")
"""Histogram buckets and creation times: bulky, and the client's own latencies are
exact (requests.csv); _sum and _count are kept."""


def parse_samples(text: str) -> dict[str, float]:
    """Exposition text -> {"name{label=value,...}": value}, labels sorted."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(SKIPPED_SUFFIXES):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def _scrape(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, float]]:
    """(HTTP status, samples); status 0 when the replica did not answer."""
    try:
        async with session.get(f"{url}/metrics") as response:
            if response.status != 200:
                return response.status, {}
            return 200, parse_samples(await response.text())
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return 0, {}


async def scrape_metrics(
    replicas: Sequence[tuple[str, int, str]],
    records: list[dict[str, object]],
    interval_s: float = SCRAPE_INTERVAL_S,
) -> None:
    """Append {"epoch_s", "service", "replica", "samples"} for each (service, index,
    url) every `interval_s` until cancelled. A replica that answers 404 has no
    /metrics and is not asked again."""
    timeout = aiohttp.ClientTimeout(total=max(interval_s, 0.5))
    active = list(replicas)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while active:
            epoch = time.time()
            answers = await asyncio.gather(*(_scrape(session, url) for _, _, url in active))
            for (service, index, _), (status, samples) in zip(active, answers, strict=True):
                if status == 200:
                    records.append(
                        {"epoch_s": epoch, "service": service, "replica": index, "samples": samples}
                    )
            active = [r for r, (status, _) in zip(active, answers, strict=True) if status != 404]
            await asyncio.sleep(max(0.0, interval_s - (time.time() - epoch)))
