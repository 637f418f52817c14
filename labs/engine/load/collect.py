"""What the services counted, read from their admin endpoints during and after the load:
every replica's /admin/stats (at the end, and sampled), and files a lab collects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from labs.engine.errors import LabError
from labs.engine.model.spec import Collect
from labs.engine.topology.base import Endpoints


def replica_urls(endpoints: Endpoints) -> list[tuple[str, int, str]]:
    return [
        (service, index, url)
        for service, urls in endpoints.services.items()
        for index, url in enumerate(urls)
    ]


async def _get_stats(session: aiohttp.ClientSession, url: str) -> dict[str, object] | None:
    try:
        async with session.get(f"{url}/admin/stats") as response:
            return await response.json() if response.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None


async def collect_stats(endpoints: Endpoints) -> dict[str, list[dict[str, object]]]:
    """Every replica's /admin/stats, by service (None where a replica did not answer)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        replicas = replica_urls(endpoints)
        answers = await asyncio.gather(*(_get_stats(session, url) for _, _, url in replicas))
    stats: dict[str, list[dict[str, object]]] = {}
    for (service, _, _), answer in zip(replicas, answers, strict=True):
        stats.setdefault(service, []).append(answer or {})
    return stats


async def collect_files(wanted: Sequence[Collect], endpoints: Endpoints, out_dir: Path) -> None:
    """Save each `Collect`'s response body; a failure is a one-line LabError (the
    lab's numbers would be meaningless without it)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for item in wanted:
            urls = endpoints.services.get(item.service, [])
            if not 0 <= item.replica < len(urls):
                if item.optional:
                    continue
                missing = f"no {item.service} replica {item.replica}"
                raise LabError(f"cannot collect {item.path}: {missing}")
            url = f"{urls[item.replica]}{item.path}"
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise LabError(f"cannot collect {url}: {exc or type(exc).__name__}") from None
            if status == 404 and item.optional:
                continue
            if status != 200:
                raise LabError(f"cannot collect {url}: HTTP {status}")
            (out_dir / item.file).write_bytes(body)


async def sample_stats(
    endpoints: Endpoints, interval_s: float, samples: list[dict[str, object]]
) -> None:
    """Append every replica's /admin/stats to `samples` every `interval_s` until cancelled."""
    timeout = aiohttp.ClientTimeout(total=max(interval_s, 0.5))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        replicas = replica_urls(endpoints)
        while True:
            epoch = time.time()
            answers = await asyncio.gather(*(_get_stats(session, url) for _, _, url in replicas))
            for (service, index, _), answer in zip(replicas, answers, strict=True):
                if answer is not None:
                    samples.append(
                        {"epoch_s": epoch, "service": service, "replica": index, "stats": answer}
                    )
            await asyncio.sleep(max(0.0, interval_s - (time.time() - epoch)))
