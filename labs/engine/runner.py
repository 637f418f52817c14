"""Run a lab: for each variant bring the topology up, drive the load, inject the
faults, measure, tear down; then judge the checks and write the results."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass, replace
from pathlib import Path
from typing import cast

from labs.engine.analysis import logseries
from labs.engine.analysis.metrics import VariantResult, read_requests, summarize
from labs.engine.analysis.stats import number
from labs.engine.errors import LabError
from labs.engine.live import server as live
from labs.engine.load.collect import collect_files, collect_stats, replica_urls, sample_stats
from labs.engine.load.distributed import (
    LocustRun,
    finish_load,
    start_load,
    wait_until_spawning,
)
from labs.engine.load.driver import LoadFiles, Progress, read_progress
from labs.engine.load.scrape import SCRAPE_INTERVAL_S, scrape_metrics
from labs.engine.model.spec import DeriveContext, Lab, Variant
from labs.engine.model.verdicts import CheckResult, all_ok, judge
from labs.engine.reporting import report
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.runtime.signals import Interrupted, interrupts_raise, run_interruptible
from labs.engine.runtime.state import new_run_id, registered_run
from labs.engine.runtime.sweep import sweep_stale_runs
from labs.engine.runtime.timings import RunTimings, Stopwatch, load_ran, split_load
from labs.engine.topology import nginx
from labs.engine.topology.base import (
    TopologyKind,
    make_topology,
    preflight,
    release,
)
from labs.engine.topology.faults import apply_faults
from labs.engine.topology.steering import Steering, run_controller

LOCUST_GRACE_S = 30.0
"""How long past its duration Locust may take (start-up, stop timeout, writing files)."""
LOAD_POLL_S = 0.1
"""How often the runner looks whether Locust has exited."""
PROGRESS_EVERY_S = 0.25
"""How often the progress line re-reads Locust's CSVs (they grow with the run)."""

ProgressCallback = Callable[[str, float, float, Progress | None], None]


@dataclass
class RunOptions:
    variants: Sequence[str] = ()
    duration_s: float | None = None
    results_root: Path = Path("results")
    progress: ProgressCallback | None = None
    variant_done: Callable[[VariantResult], None] | None = None
    topology: TopologyKind = "local"
    live: Callable[[str, str], None] | None = None
    """`lab run --live`: serve each variant's dashboard while it runs and call this
    with (variant, URL) once it is up."""
    locust_workers: int = 0
    """`--locust-workers N`: Locust as a master and N worker processes (0: one process)."""
    ready: Callable[[], None] | None = None
    """Called once the topology's prerequisites are there, before anything starts: a
    note printed here never precedes a "nginx not found"."""


@dataclass
class RunOutcome:
    lab: Lab
    results: dict[str, VariantResult]
    checks: list[CheckResult]
    results_dir: Path
    timings: RunTimings | None = None
    """Where the wall time went (also in timings.json)."""
    topology: TopologyKind = "local"

    @property
    def passed(self) -> bool:
        """Every judged check passed and none would pass without its fix."""
        return all_ok(self.checks)

    def to_dict(self) -> dict[str, object]:
        return report.results_document(
            self.lab, self.results, self.checks, self.results_dir, self.topology
        )


def select_variants(lab: Lab, names: Sequence[str]) -> list[Variant]:
    return [lab.variant(name) for name in names] if names else list(lab.variants)


def shortened(variants: Sequence[Variant], duration_s: float | None) -> str:
    """Why the checks cannot be judged at `duration_s` ("" when they can: the lab's own
    duration or longer). A duration that would cancel a fault is refused (LabError)."""
    if duration_s is None:
        return ""
    for variant in variants:
        for step in variant.faults:
            if step.at_s >= duration_s:
                last = max(s.at_s for s in variant.faults)
                target = (
                    step.service if step.replica is None else f"{step.service}-{step.replica + 1}"
                )
                raise LabError(
                    f"--duration {duration_s:g} is too short for {variant.name}: its fault "
                    f"'{step.action} {target}' comes at {step.at_s:g} s; give more than "
                    f"{last:g} s (the lab's own duration is {variant.load.duration_s:g} s)"
                )
    tuned = max(v.load.duration_s for v in variants)
    if duration_s < tuned:
        return (
            f"not judged: the load was shortened to {duration_s:g} s, and the checks are "
            f"tuned for {tuned:g} s"
        )
    return ""


def run_lab(lab: Lab, options: RunOptions) -> RunOutcome:
    """Run the lab's variants one after another. Every process started here is
    stopped before this returns or raises, including on SIGINT and SIGTERM."""
    started = time.monotonic()
    variants = select_variants(lab, options.variants)
    unjudged = shortened(variants, options.duration_s)
    if options.duration_s is not None:
        variants = [
            replace(v, load=replace(v.load, duration_s=options.duration_s)) for v in variants
        ]
    preflight(options.topology)
    if options.ready:
        options.ready()
    sweep_stale_runs()
    run_id = new_run_id(lab.name)
    results_dir = report.create_results_dir(options.results_root, lab.name)
    group = ProcessGroup(run_id, results_dir / "logs")
    watches = {variant.name: Stopwatch() for variant in variants}
    setup_s = time.monotonic() - started
    with interrupts_raise(), registered_run(run_id, lab.name, "run"):
        try:
            results = run_interruptible(
                _run_variants(lab, variants, group, results_dir, options, watches),
                on_signal=lambda _signum: stopping(group),
            )
        except Interrupted:
            stopping(group)  # the signal came outside the loop (no-op if said already)
            raise
        finally:
            group.stop_all()
            release(options.topology, run_id)
    reporting = time.monotonic()
    checks = judge(lab, results, unjudged)
    outcome = RunOutcome(lab, results, checks, results_dir, topology=options.topology)
    report.write(outcome.to_dict(), lab, results_dir, results, checks)
    phases = {name: dict(watch.seconds) for name, watch in watches.items()}
    planned = {v.name: v.load.duration_s for v in variants}
    outcome.timings = RunTimings(
        wall_s=time.monotonic() - started,
        setup_s=setup_s,
        report_s=time.monotonic() - reporting,
        load_s=load_ran(planned, phases, lab.parallel_variants),
        variants=phases,
    )
    outcome.timings.write(results_dir / "timings.json")
    return outcome


def stopping(group: ProcessGroup) -> None:
    """On Ctrl-C or SIGTERM: one line on stderr saying what is being stopped, and every
    child signalled at once (they are then waited for together, briefly)."""
    running = group.interrupt()
    if running:
        sys.stderr.write(f"lab: stopping: {running}\n")
        sys.stderr.flush()


async def _run_variants(
    lab: Lab,
    variants: list[Variant],
    group: ProcessGroup,
    results_dir: Path,
    options: RunOptions,
    watches: Mapping[str, Stopwatch],
) -> dict[str, VariantResult]:
    async def one(variant: Variant) -> VariantResult:
        out_dir = results_dir / variant.name
        watch = watches[variant.name]
        result = await run_variant(lab, variant, group, out_dir, options, watch)
        if options.variant_done:
            options.variant_done(result)
        return result

    if lab.parallel_variants:
        finished = await asyncio.gather(*(one(v) for v in variants))
        return {result.variant: result for result in finished}
    return {variant.name: await one(variant) for variant in variants}


async def run_variant(
    lab: Lab,
    variant: Variant,
    group: ProcessGroup,
    out_dir: Path,
    options: RunOptions,
    watch: Stopwatch | None = None,
) -> VariantResult:
    watch = watch or Stopwatch()
    topology = make_topology(options.topology, lab, variant, group, out_dir)
    files = LoadFiles(out_dir)
    events: list[dict[str, object]] = []
    samples: list[dict[str, object]] = []
    scrapes: list[dict[str, object]] = []
    dashboard: live.Dashboard | None = None
    try:
        with watch.phase("start"):
            endpoints = await topology.start()
        if options.live:
            title = f"{lab.name} / {variant.name}"
            dashboard = await live.serve_dashboard(
                topology, variant, endpoints, events, title, client=lambda: _totals(files)
            )
            options.live(variant.name, dashboard.url)
        load_started = time.time()
        workers = options.locust_workers
        containers = topology.worker_containers() if workers else None
        locust = start_load(group, variant.load, endpoints.nginx_url, files, workers, containers)
        await wait_until_spawning(locust)
        background = [
            asyncio.create_task(apply_faults(variant.faults, endpoints, events, topology))
        ]
        if variant.controller:
            steering = Steering(topology, endpoints, events)
            background.append(asyncio.create_task(run_controller(variant.controller, steering)))
        if lab.sample_interval_s:
            background.append(
                asyncio.create_task(sample_stats(endpoints, lab.sample_interval_s, samples))
            )
        scrape_every = min(SCRAPE_INTERVAL_S, lab.sample_interval_s or SCRAPE_INTERVAL_S)
        background.append(
            asyncio.create_task(scrape_metrics(replica_urls(endpoints), scrapes, scrape_every))
        )
        try:
            await wait_for_load(locust, variant, files, options)
            await finish_load(group, locust)
            load_ended = time.time()
            if not files.events.exists():
                raise LabError(
                    f"locust wrote no records in variant {variant.name}: "
                    f"{locust.log_tail(3) or 'no output'}"
                )
        finally:
            collecting = time.monotonic()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        final_stats = await collect_stats(endpoints)
        await collect_files(lab.collect, endpoints, out_dir)
        watch.add("collect", time.monotonic() - collecting)
    finally:
        if dashboard is not None:
            await dashboard.stop()
        with watch.phase("stop"):
            topology.stop()
    with watch.phase("measure"):
        result = measure(variant, files, out_dir, Recorded(events, samples, scrapes, final_stats))
        split_load(watch, load_started, load_ended, result.raw_requests)
        return derived(lab, variant, result, out_dir)


def derived(lab: Lab, variant: Variant, result: VariantResult, out_dir: Path) -> VariantResult:
    """The result with the lab's own numbers from its `derive` hook (if any)."""
    if not lab.derive:
        return result
    numbers = lab.derive(DeriveContext(variant, result, result.raw_requests, out_dir))
    if is_dataclass(numbers) and not isinstance(numbers, type):
        return result.with_derived(numbers)
    return replace(result, extra=dict(cast(Mapping[str, object], numbers)))


@dataclass(frozen=True)
class Recorded:
    """What the engine recorded while the load ran, with epoch times (`epoch_s`)."""

    events: list[dict[str, object]]
    samples: list[dict[str, object]]
    scrapes: list[dict[str, object]]
    services: dict[str, list[dict[str, object]]]
    """Every replica's /admin/stats at the end of the load."""


async def wait_for_load(
    locust: LocustRun, variant: Variant, files: LoadFiles, options: RunOptions
) -> None:
    started = time.monotonic()
    limit = variant.load.duration_s + LOCUST_GRACE_S
    shown = -PROGRESS_EVERY_S
    while locust.alive():
        elapsed = time.monotonic() - started
        if options.progress and elapsed - shown >= PROGRESS_EVERY_S:
            shown = elapsed
            options.progress(variant.name, elapsed, variant.load.duration_s, read_progress(files))
        if elapsed > limit:
            raise LabError(f"locust did not finish within {limit:g} s ({variant.name})")
        await asyncio.sleep(LOAD_POLL_S)
    if locust.returncode != 0:
        raise LabError(
            f"locust failed in variant {variant.name} (exit {locust.returncode}): "
            f"{locust.log_tail(3) or 'no output'}"
        )


def _totals(files: LoadFiles) -> tuple[int, int] | None:
    progress = read_progress(files)
    return (progress.requests, progress.failures) if progress else None


def _relative(record: dict[str, object], origin_s: float) -> dict[str, object]:
    epoch = number(record.pop("epoch_s"))
    return {"t_s": round(epoch - origin_s, 3), **record}


def measure(variant: Variant, files: LoadFiles, out_dir: Path, recorded: Recorded) -> VariantResult:
    """The variant's result from its raw records: the clients' requests, nginx's logs,
    what the engine recorded (times made relative to the first request)."""
    result = summarize(variant.name, read_requests(files.events))
    nginx_dir = out_dir / "nginx"
    error_log, access_log = nginx_dir / "error.log", nginx_dir / "access.log"
    error_text = error_log.read_text(errors="replace") if error_log.exists() else ""
    access_text = access_log.read_text(errors="replace") if access_log.exists() else ""
    access = nginx.parse_access_log(access_text) if access_log.exists() else None
    origin = result.origin_s
    return replace(
        result,
        nginx_errors=nginx.parse_error_log(error_text) if error_log.exists() else {},
        upstream_attempts=access.upstream_attempts if access else {},
        upstream_retried=access.retried if access else 0,
        nginx_series=logseries.nginx_series(error_text, access_text, origin, len(result.series)),
        events=[_relative(e, origin) for e in recorded.events],
        samples=[_relative(s, origin) for s in recorded.samples],
        scrapes=[_relative(s, origin) for s in recorded.scrapes],
        services=recorded.services,
        artifacts={
            str(p.relative_to(out_dir)): str(p)
            for p in sorted(out_dir.rglob("*"))
            if p.is_file() and p.stat().st_size
        },
    )


__all__ = ["Interrupted", "RunOptions", "RunOutcome", "run_lab", "select_variants"]
