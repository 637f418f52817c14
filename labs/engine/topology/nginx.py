"""nginx for a lab: find the binary, render the variant's config, read its logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from labs.engine.errors import LabError
from labs.engine.model.spec import REPO_ROOT, NginxSpec
from labs.engine.topology.dns import DNS_ADDRESS

TEMPLATE_DIR = REPO_ROOT / "compose" / "nginx"
TEMPLATE_NAME = "nginx.conf.j2"
INSTALL_HINT = "install it: apt-get install nginx (Debian/Ubuntu) or brew install nginx (macOS)"


def find_nginx() -> str:
    """The nginx binary: $LAB_NGINX, then PATH, then /usr/sbin (not on a user's PATH)."""
    override = os.environ.get("LAB_NGINX")
    if override:
        if not os.access(override, os.X_OK):
            raise LabError(f"LAB_NGINX={override} is not an executable nginx; {INSTALL_HINT}")
        return override
    candidate = shutil.which("nginx")
    if not candidate and os.access("/usr/sbin/nginx", os.X_OK):
        candidate = "/usr/sbin/nginx"
    if not candidate:
        raise LabError(f"nginx not found; {INSTALL_HINT}")
    return candidate


@dataclass(frozen=True)
class NginxLayout:
    """Where one nginx instance keeps its files, all under a private prefix."""

    prefix: Path

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def pid(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def temp(self) -> Path:
        return self.prefix / "temp"


def render_config(
    spec: NginxSpec,
    *,
    lab: str,
    variant: str,
    listen: str,
    servers: list[str],
    layout: NginxLayout,
    user: str | None = None,
    resolver: str = DNS_ADDRESS,
) -> str:
    """`user` is nginx's `user` directive: None = root when we run as root (the local
    topology), "" = none (a container started as an unprivileged user). `resolver`: the
    DNS server nginx asks while running when `spec.dns` is "resolver" (the local dns
    part's dnsmasq; Docker's own on compose)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    upstream = {
        "name": "backend",
        "servers": servers,
        # Server i gets weights[i]: a Variant has one per replica; a config rendered with
        # fewer servers (nginx -t of every variant against one address) takes the first.
        "weights": spec.upstream.weights[: len(servers)],
        "keepalive": spec.upstream.keepalive,
        "keepalive_timeout": spec.upstream.keepalive_timeout,
        "balance": spec.upstream.balance,
        "max_fails": spec.upstream.max_fails,
        "fail_timeout": spec.upstream.fail_timeout,
    }
    return env.get_template(TEMPLATE_NAME).render(
        lab=lab,
        variant=variant,
        worker_processes=spec.worker_processes,
        pid_path=layout.pid,
        error_log=layout.error_log,
        error_log_level="error",
        access_log=layout.access_log,
        temp_dir=layout.temp,
        user=("root" if os.geteuid() == 0 else "") if user is None else user,
        upstream=upstream,
        proxy=spec.proxy,
        listen=listen,
        client_keepalive_timeout=spec.client_keepalive_timeout,
        extra_location=spec.extra_location,
        http_directives=spec.http_directives,
        retry_after_s=spec.retry_after_s,
        dns=spec.dns,
        dns_valid=spec.dns_valid,
        resolver=resolver,
    )


def without_servers(
    spec: NginxSpec, servers: Sequence[str], removed: Collection[int]
) -> tuple[NginxSpec, list[str]]:
    """nginx's upstream with the servers at the `removed` indices left out, as a
    scale-in leaves it (the "remove" fault): the servers that stay, each with its own
    weight."""
    keep = [i for i in range(len(servers)) if i not in removed]
    if not keep:
        raise LabError("cannot take every server out of nginx's upstream")
    weights = tuple(w for i, w in enumerate(spec.upstream.weights) if i in keep)
    upstream = replace(spec.upstream, weights=weights)
    return replace(spec, upstream=upstream), [servers[i] for i in keep]


def reweighted(spec: NginxSpec, weights: tuple[int, ...] | None) -> NginxSpec:
    """`spec` with its upstream's weights replaced (None: as it is)."""
    if weights is None:
        return spec
    return replace(spec, upstream=replace(spec.upstream, weights=weights))


def checked_weights(weights: tuple[int, ...], servers: int) -> tuple[int, ...]:
    """One weight per upstream server, each 0 (`down`) to 1000; LabError otherwise."""
    if len(weights) != servers or any(not 0 <= w <= 1000 for w in weights):
        raise LabError(f"weights {list(weights)}: need {servers} values, each 0-1000")
    return tuple(weights)


def write_config(text: str, layout: NginxLayout) -> None:
    layout.prefix.mkdir(parents=True, exist_ok=True)
    layout.temp.mkdir(exist_ok=True)
    layout.conf.write_text(text)


def nginx_argv(layout: NginxLayout) -> list[str]:
    return [
        find_nginx(),
        "-p", str(layout.prefix),
        "-e", str(layout.error_log),
        "-c", str(layout.conf),
        "-g", "daemon off;",
    ]  # fmt: skip


def test_config(layout: NginxLayout) -> None:
    """`nginx -t` on the rendered config; its own message on failure."""
    run_config_test(nginx_argv(layout)[:-2] + ["-t", "-q"], layout.conf)


def run_config_test(argv: list[str], conf: Path) -> None:
    """Run an `nginx -t` command line (e.g. in a namespace); its own message on failure."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(rejected(conf, result.stderr, result.returncode))


def rejected(conf: Path | str, output: str, returncode: int) -> str:
    """Our line naming the config, then nginx's own message line by line, as nginx wrote
    it (its lines are separate statements: "[emerg] ... in FILE:LINE", then "test
    failed"), each indented under ours."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    message = "\n".join(f"  {line}" for line in lines) or f"  exit status {returncode}"
    return f"nginx rejected the config {conf}:\n{message}"


# nginx error-log messages, by the failure kind they reveal.
ERROR_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("upstream_prematurely_closed", re.compile(r"upstream prematurely closed connection")),
    ("connection_reset", re.compile(r"\(104: Connection reset by peer\)")),
    ("connection_refused", re.compile(r"\(111: Connection refused\)")),
    ("upstream_timed_out", re.compile(r"upstream timed out")),
    ("no_live_upstreams", re.compile(r"no live upstreams")),
    ("broken_pipe", re.compile(r"\(32: Broken pipe\)")),
    ("limiting_requests", re.compile(r"limiting requests, excess")),
)
UPSTREAM_RESET_KINDS = ("upstream_prematurely_closed", "connection_reset", "broken_pipe")
_ERROR_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?P<level>\w+)\]")


def parse_error_log(text: str) -> dict[str, int]:
    """Count error-log entries by kind; unrecognised [error]/[crit] lines count as `other`."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        header = _ERROR_LINE.match(line)
        if not header:
            continue
        for kind, pattern in ERROR_KINDS:
            if pattern.search(line):
                counts[kind] += 1
                break
        else:
            if header["level"] in ("error", "crit", "alert", "emerg"):
                counts["other"] += 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class AccessSummary:
    requests: int
    status: dict[str, int]
    upstream_attempts: dict[str, int]
    """Every upstream try by status, e.g. {"200": 620, "502": 12}."""
    retried: int
    """Requests nginx sent to the upstream more than once (proxy_next_upstream)."""


def parse_access_log(text: str) -> AccessSummary:
    status: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    retried = 0
    requests = 0
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        requests += 1
        status[str(entry["status"])] += 1
        tries = [
            t.strip() for t in re.split(r"[,:]", entry.get("upstream_status", "")) if t.strip()
        ]
        attempts.update(tries)
        if len(tries) > 1:
            retried += 1
    return AccessSummary(
        requests, dict(sorted(status.items())), dict(sorted(attempts.items())), retried
    )


@dataclass(frozen=True)
class UpstreamTry:
    addr: str
    """host:port nginx tried."""
    status: str
    """What that try got: an HTTP status, or "502"/"504" for a connection that failed."""

    @property
    def succeeded(self) -> bool:
        return self.status.isdigit() and 200 <= int(self.status) < 400


@dataclass(frozen=True)
class AccessEntry:
    """One access-log line: a client request and every upstream try nginx made for it."""

    start_s: float
    """Epoch seconds the request arrived ($msec at the end minus $request_time)."""
    status: int
    uri: str
    tries: tuple[UpstreamTry, ...]
    replica: str
    """X-Replica of the last try's response ("" when no replica answered)."""


def access_entries(text: str) -> list[AccessEntry]:
    """Every request in the access log with its upstream tries, in log order. Which
    replica an address is shows in the entries a replica answered (`replica`)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            end, took = float(entry["t"]), float(entry["request_time"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        addrs = [a.strip() for a in re.split(r"[,:] ", entry.get("upstream_addr", ""))]
        codes = [c.strip() for c in re.split(r"[,:] ", entry.get("upstream_status", ""))]
        tries = tuple(UpstreamTry(a, c) for a, c in zip(addrs, codes, strict=False) if a and c)
        entries.append(
            AccessEntry(
                start_s=end - took,
                status=int(entry["status"]),
                uri=str(entry.get("uri", "")),
                tries=tries,
                replica=str(entry.get("upstream_replica", "")),
            )
        )
    return entries


_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str) -> float:
    """nginx time syntax ("60s", "900ms", "1m30s", "75") in seconds; ValueError otherwise.

    nginx itself rejects fractions like "0.9s", and so does this."""
    parts = re.fullmatch(r"(?:\d+(?:ms|s|m|h|d)?)+", text.strip())
    if not parts:
        raise ValueError(f"not an nginx time: {text!r} (examples: 60s, 900ms, 1m)")
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d)?", text.strip()):
        total += int(number) * _TIME_UNITS[unit or "s"]
    return total
