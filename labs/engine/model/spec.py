"""What a lab is, as data: topology, variants, load, faults, checks.

A lab module builds one `Lab`; the engine reads it and never imports a lab by name.
Variants are whole descriptions (use `dataclasses.replace` on a base variant), so a
reader of lab.py sees exactly what differs between `broken` and `fixed`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from labs.engine.analysis.metrics import Request, VariantResult
    from labs.engine.topology.steering import Steering

REPO_ROOT = Path(__file__).resolve().parents[3]
LOADTESTS_DIR = REPO_ROOT / "loadtests"


@dataclass(frozen=True)
class Upstream:
    """nginx's upstream block: how it pools and picks backend connections."""

    keepalive: int = 0
    """Idle connections nginx keeps per worker (0 = a new connection per request)."""
    keepalive_timeout: str = "60s"
    balance: str = ""
    """Algorithm directive, e.g. "least_conn" ("" = round robin)."""
    max_fails: int = 0
    """0 = never mark a server down (passive health checks off)."""
    fail_timeout: str = "10s"
    weights: tuple[int, ...] = ()
    """Each server's `weight=`, in replica order, one per replica (() = nginx's default
    1 for every server): weighted balancing, e.g. a slow replica down-weighted."""


@dataclass(frozen=True)
class Proxy:
    connect_timeout: str = "2s"
    read_timeout: str = "30s"
    next_upstream: str = "error timeout"
    """nginx's default; "off" shows every upstream error to the client."""


@dataclass(frozen=True)
class NginxSpec:
    upstream: Upstream = field(default_factory=Upstream)
    proxy: Proxy = field(default_factory=Proxy)
    client_keepalive_timeout: str = "75s"
    worker_processes: int = 1
    extra_location: tuple[str, ...] = ()
    """Extra directives for `location /`, without the trailing semicolon."""
    http_directives: tuple[str, ...] = ()
    """Extra directives for the `http` block (e.g. `limit_req_zone ...`), without the
    trailing semicolon; a block (`map $a $b { ...; }`) is rendered as written."""
    retry_after_s: int = 1
    """Retry-After on nginx's own 429s (`error_page 429 = @too_many_requests`)."""
    backend: str = "api"
    """The service whose replicas form nginx's upstream."""
    dns: Literal["", "upstream", "resolver"] = ""
    """How nginx finds the backend: "" = by address; with the "dns" part (local) or
    Docker's DNS (compose), by name: "upstream" = the name in the upstream block,
    resolved once when nginx loads its config; "resolver" = the name in a variable in
    `proxy_pass`, resolved while running through `resolver` (cached `dns_valid`)."""
    dns_valid: str = "1s"


@dataclass(frozen=True)
class ServiceSpec:
    """A service behind nginx, run as `python -m <module> --port P <args>`."""

    name: str = "api"
    module: str = "services.api"
    replicas: int = 1
    args: Mapping[str, object] = field(default_factory=dict)
    """Command-line options without the leading dashes: {"keepalive-timeout": 1.0}."""
    depends_on: Mapping[str, str] = field(default_factory=dict)
    """Option -> service: the engine passes that service's URLs (comma-separated)."""
    replica_args: tuple[Mapping[str, object], ...] = ()
    """Options for one replica each, in replica order, after `args` (() = none): e.g.
    a new release beside the old one, `({}, {"error-status": 500})`."""

    def replica_name(self, replica: int) -> str:
        return f"{self.name}-{replica + 1}"

    def options(self, replica: int, urls: Mapping[str, Sequence[str]]) -> list[str]:
        """Command-line options for one replica, the same on every topology (each adds
        where to listen). `urls`: the replica URLs of the services started so far."""
        argv = ["--replica-id", self.replica_name(replica)]
        for option, value in self.args.items():
            argv += [f"--{option}", str(value)]
        for option, dependency in self.depends_on.items():
            if dependency not in urls:
                from labs.engine.errors import LabError

                raise LabError(f"service {self.name} depends on {dependency}, which starts later")
            argv += [f"--{option}", ",".join(urls[dependency])]
        own = self.replica_args[replica] if replica < len(self.replica_args) else {}
        for option, value in own.items():
            argv += [f"--{option}", str(value)]
        return argv


@dataclass(frozen=True)
class LoadSpec:
    locustfile: str
    """File name under loadtests/."""
    users: int
    spawn_rate: float
    duration_s: float
    env: Mapping[str, str] = field(default_factory=dict)
    """Parameters for the locustfile (each documents its own LAB_* variables)."""

    def __post_init__(self) -> None:
        if self.duration_s < 1 or self.duration_s != int(self.duration_s):
            raise ValueError(
                f"duration_s must be whole seconds >= 1 (Locust's -t), got {self.duration_s}"
            )

    @property
    def path(self) -> Path:
        return LOADTESTS_DIR / self.locustfile


FaultAction = Literal["settings", "stop", "kill", "start", "remove", "move", "reload"]


@dataclass(frozen=True)
class FaultStep:
    """At `at_s` seconds into the load, act on a service (or a part, e.g. "redis").

    `action` "settings" PUTs `settings` on the service's /admin/faults; "stop" sends
    SIGTERM (a clean shutdown) and "kill" SIGKILL (a crash) to its processes; "start"
    brings stopped or killed replicas back (same command line, same address) and
    returns once they are ready; "remove" takes replicas of nginx's backend out of its
    upstream, as a scale-in does (nginx's config rendered without them, then reloaded;
    the replicas keep running). "move" moves a replica of nginx's backend to a new
    address (a new process there, its DNS name updated, then the old one stopped: needs
    `NginxSpec.dns`); "reload" reloads nginx's config (SIGHUP), e.g. after a move.
    """

    at_s: float
    service: str
    settings: Mapping[str, object] = field(default_factory=dict)
    replica: int | None = None
    """Index of one replica, or None for all of them."""
    action: FaultAction = "settings"
    label: str = ""
    """A short name for the phase this step begins ("stall", "dead"), written on the
    plots' fault shading; empty: the plots derive one from the action or settings."""


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    nginx: NginxSpec
    services: tuple[ServiceSpec, ...]
    load: LoadSpec
    faults: tuple[FaultStep, ...] = ()
    parts: tuple[str, ...] = ()
    """Infrastructure the engine runs before the services, by name (known: "redis").
    A service gets a part's URL like a service's: `depends_on={"redis-url": "redis"}`."""
    twin: str = ""
    """The same experiment on the other side of the fix: for a variant that carries a
    fix, the variant without it; for one that must reproduce a failure, the variant with
    the fix. The engine re-judges every check with this variant's result replaced by its
    twin's, which proves on every run that the check could fail (labs/engine/model/verdicts.py)."""
    explore: str = ""
    """Why no check judges this variant: it is there to explore (shown by `lab show`)."""
    controller: Callable[[Steering], Awaitable[None]] | None = None
    """A task that runs beside the load and acts on the topology as it goes (e.g. a
    rollout: nginx weights changed through reloads, gated on the replicas' stats);
    what it does is recorded in the variant's events (labs/engine/topology/steering.py)."""

    def __post_init__(self) -> None:
        weights = self.nginx.upstream.weights
        backend = [s for s in self.services if s.name == self.nginx.backend]
        if weights and backend and len(weights) != backend[0].replicas:
            raise ValueError(
                f"variant {self.name}: upstream weights {list(weights)} must give one weight "
                f"per {self.nginx.backend} replica ({backend[0].replicas})"
            )


@dataclass(frozen=True)
class Check:
    """A verdict over the variants' results; `evaluate` returns (passed, detail)."""

    name: str
    evaluate: Callable[[Mapping[str, VariantResult]], tuple[bool, str]]
    variants: tuple[str, ...]
    """Variants this check needs; "not judged" when a run leaves one out. () = whichever
    variants ran (such a check must give `not_applicable`)."""
    twins: Mapping[str, str] = field(default_factory=dict)
    """Variant -> the twin this check is re-judged against, where it is not the variant's
    own `twin` (e.g. "catalog unaffected" proves the bulkhead: its twin has no bulkhead)."""
    not_applicable: str = ""
    """Why this check compares no fix, so that re-judging it against the variants'
    twins proves nothing (e.g. "the load ran before the fault"). Few checks need it."""
    measure: Callable[[Mapping[str, VariantResult]], float] | None = None
    """The number the check judges (e.g. the count of 502s), for `lab check --repeat`'s
    min / median / max band; None: the check reports none (shown as n/a)."""


@dataclass(frozen=True)
class Collect:
    """After the load, before the topology stops: GET `path` from one replica of
    `service` and save the body as `file` in the variant's results folder, for the
    lab's `derive` hook (which runs once everything is stopped). E.g. a store's
    contents to reconcile with what the clients meant to write."""

    service: str
    path: str
    file: str
    replica: int = 0
    optional: bool = False
    """Skip it (no file) when the replica is missing or answers 404, e.g. in a lab's
    variants that run the service without the feature serving `path`."""


@dataclass(frozen=True)
class DeriveContext:
    """What a lab's `derive` hook sees after a variant ran."""

    variant: Variant
    result: VariantResult
    requests: Sequence[Request]
    out_dir: Path


Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]
"""Label -> (x: seconds since the first request, y values)."""


@dataclass(frozen=True)
class Plot:
    """One panel of the report: a quantity over time, per variant."""

    title: str
    y_label: str
    series: Callable[[VariantResult], Series]
    kind: Literal["line", "step", "bar"] = "line"
    shade_faults: bool = True
    """Shade the windows between fault events (`VariantResult.events`)."""


@dataclass(frozen=True)
class Table:
    """A table of the report built from the run's variants (e.g. one row per variant):
    `rows` gets the results of the variants that ran and returns cells as text."""

    title: str
    columns: tuple[str, ...]
    rows: Callable[[Mapping[str, VariantResult]], Sequence[Sequence[str]]]
    note: str = ""
    """One line under the table: how to read it."""


@dataclass(frozen=True)
class Exercise:
    """The lab handed to a learner: its broken variant's editable settings, a
    grade that runs them, hints, and guards against "fixes" that remove the
    thing under test. The lab maps its settings file to and from a Variant."""

    task: str
    """The symptom as a user sees it, and where to look."""
    broken: str
    fixed: str
    settings: Callable[[Variant], str]
    """The editable file's text (TOML) for a variant."""
    apply: Callable[[Variant, Mapping[str, Any]], Variant]
    """The learner's parsed file applied to the broken variant (ValueError: bad value)."""
    measure: Callable[[VariantResult], str]
    """The symptom in numbers, e.g. "37 of 640 requests were 502 (5.8 %)"."""
    holds: Callable[[VariantResult], bool]
    expected: str
    """What a holding fix shows, e.g. "0 502s"."""
    advice: str
    """Where to look when the fix does not hold yet."""
    guards: tuple[Callable[[Variant], str | None], ...] = ()
    """Each returns why an edit is not a fix (it removes the thing under test), or None."""
    hints: tuple[str, ...] = ()
    file_name: str = "settings.toml"
    grade_in_parallel: bool = True
    """Run "before" and "after" at once (as `Lab.parallel_variants`): only for light loads."""


@dataclass(frozen=True)
class Lab:
    name: str
    title: str
    question: str
    """The one question the lab answers, shown in `lab list` and reports."""
    guide: Path
    variants: tuple[Variant, ...]
    checks: tuple[Check, ...]
    key_metrics: tuple[str, ...] = ("requests", "status.502", "p99_ms")
    """Columns of the summary table: VariantResult fields or `status.<code>`."""
    demo: bool = True
    parallel_variants: bool = False
    """Run all variants at once, each on its own topology. Only for labs whose
    variants are light enough not to disturb each other on 2 cores."""
    sample_interval_s: float | None = None
    """Poll every replica's /admin/stats this often during the load (None = only at the end)."""
    derive: Callable[[DeriveContext], object] | None = None
    """Lab-specific numbers from a variant's run: a frozen dataclass (kept typed in
    `VariantResult.derived`, its JSON view in `extra`) or, in older labs, a mapping."""
    collect: tuple[Collect, ...] = ()
    """Files fetched from the services before they stop (for `derive`)."""
    plots: tuple[Plot, ...] = ()
    exercise: Exercise | None = None
    tables: tuple[Table, ...] = ()
    """Tables of the report beside the variants table (labs/engine/reporting/tables.py)."""

    def __post_init__(self) -> None:
        """A lab that cannot prove its checks is refused at import (tests import all)."""
        names = {v.name for v in self.variants}
        judged = {name for check in self.checks for name in check.variants}
        for v in self.variants:
            if v.twin and v.twin not in names:
                raise ValueError(f"lab {self.name}: variant {v.name}'s twin {v.twin!r} is unknown")
        for check in self.checks:
            twins_used = {self.twin_of(check, name) for name in check.variants} - {""}
            judged |= twins_used
            unknown = twins_used - names
            if unknown:
                raise ValueError(f"lab {self.name}: check {check.name}: unknown twins {unknown}")
            if not check.not_applicable and not twins_used:
                raise ValueError(
                    f"lab {self.name}: check {check.name} has no variant with a twin to be "
                    "re-judged against; name one, or say in `not_applicable` why it compares "
                    "no fix"
                )
        for v in self.variants if self.checks else ():  # no checks: a harness (a grade)
            if v.name not in judged and not v.explore:
                raise ValueError(
                    f"lab {self.name}: no check judges variant {v.name} (nor re-judges a check "
                    "on its numbers); judge it or say why it is there in `explore`"
                )

    def twin_of(self, check: Check, variant: str) -> str:
        """The twin `check` is re-judged against for `variant` ("" = none)."""
        if variant in check.twins:
            return check.twins[variant]
        return next((v.twin for v in self.variants if v.name == variant), "")

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.variants)
        from labs.engine.errors import LabError

        raise LabError(f"unknown variant {name!r} for lab {self.name} (known: {known})")
