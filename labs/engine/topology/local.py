"""The local topology: nginx and the services as child processes on 127.0.0.1.

No Docker: the system's nginx runs from a private prefix (a temp dir) with the
variant's rendered config, each service replica is `python -m <module>` on a free
port, and nothing is considered up until it answers its health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from labs.engine.errors import LabError, StartupError
from labs.engine.model.spec import REPO_ROOT, FaultAction, Lab, ServiceSpec, Variant
from labs.engine.runtime.processes import Child, ProcessGroup
from labs.engine.topology import dns, nginx, parts
from labs.engine.topology.base import Endpoints
from labs.engine.topology.ports import HOST, ensure_port_free, free_ports

STARTUP_TIMEOUT_S = 15.0


def service_argv(
    spec: ServiceSpec, port: int, replica: int, urls: dict[str, list[str]]
) -> list[str]:
    return [sys.executable, "-m", spec.module, "--port", str(port), *spec.options(replica, urls)]


class LocalTopology:
    """One variant's processes. `start()` returns when all are healthy; `stop()` is idempotent."""

    def __init__(
        self,
        lab: Lab,
        variant: Variant,
        group: ProcessGroup,
        artifacts_dir: Path,
        nginx_port: int | None = None,
    ) -> None:
        self.lab = lab
        self.variant = variant
        self.group = group
        self.artifacts_dir = artifacts_dir
        self.nginx_port = nginx_port
        self.children: list[Child] = []
        self.launches: dict[str, tuple[list[str], str]] = {}
        """Replica name -> (argv, URL): how to start it again after a stop or kill."""
        self.prefix = Path(tempfile.mkdtemp(prefix=f"lab-{group.run_id}-"))
        self.layout = nginx.NginxLayout(self.prefix)
        self.log_dir = artifacts_dir / "logs"
        self.listen = ""
        self.upstream: list[tuple[str, str]] = []
        """(replica name, host:port) of every server in nginx's upstream, in order."""
        self.removed: set[int] = set()
        """Indices in `upstream` that a "remove" fault took out."""
        self.addresses: dict[str, str] = {}
        """Backend replica name -> the loopback address it binds, when nginx finds it
        by DNS name (`NginxSpec.dns`): 127.0.0.2, then the next one after each move."""
        self.endpoints: Endpoints | None = None
        self.weights: tuple[int, ...] | None = None
        """The upstream's weights as a controller last set them (None: the variant's)."""

    async def start(self) -> Endpoints:
        if self.nginx_port is not None:
            ensure_port_free(self.nginx_port)
        nginx.find_nginx()  # fail before starting anything when nginx or a part is missing
        parts.check_parts(self.variant.parts)
        replicas = sum(s.replicas for s in self.variant.services)
        ports = iter(free_ports(replicas + len(self.variant.parts) + 1))
        nginx_port = self.nginx_port or next(ports)
        urls: dict[str, list[str]] = {}
        part_urls: dict[str, str] = {}
        for name in self.variant.parts:
            part = await parts.start_part(
                name, self.group, next(ports), self.prefix / name, log_dir=self.log_dir
            )
            self.children.append(part.child)
            urls[name] = [part.url]
            part_urls[name] = part.url
        named = self._named_backend()
        replicas_at: list[tuple[ServiceSpec, int, str, int]] = []
        for spec in self.variant.services:  # every URL is known before any service starts
            for replica in range(spec.replicas):
                host = HOST
                if named and spec.name == named:
                    host = self.addresses[spec.replica_name(replica)] = dns.BACKEND_ADDRESSES[0]
                port = next(ports)
                replicas_at.append((spec, replica, host, port))
                urls.setdefault(spec.name, []).append(f"http://{host}:{port}")
        started = []
        for spec, replica, host, port in replicas_at:
            argv = service_argv(spec, port, replica, urls)
            if host != HOST:
                argv += ["--host", host]
            child = self.group.start(
                f"{spec.name}-{replica + 1}", argv, cwd=REPO_ROOT, log_dir=self.log_dir
            )
            self.children.append(child)
            started.append((child, f"http://{host}:{port}"))
            self.launches[child.name] = (argv, f"http://{host}:{port}")
        # all at once: a dependency's URL is all a dependent needs at start (no service
        # calls another before the load), and their Python start-ups share both cores
        await asyncio.gather(*(wait_healthy(c, f"{u}/readyz") for c, u in started))
        services = {name: u for name, u in urls.items() if name not in part_urls}
        backend = self.variant.nginx.backend
        if backend not in services:
            raise LabError(f"nginx backend {backend!r} is not a service of this variant")
        self.listen = f"{HOST}:{nginx_port}"
        backend_spec = next(s for s in self.variant.services if s.name == backend)
        self.upstream = [
            (backend_spec.replica_name(i), u.removeprefix("http://"))
            for i, u in enumerate(urls[backend])
        ]
        if named:
            await self._publish_names()
            self.upstream = [
                (name, f"{dns.name_of(backend)}:{server.rpartition(':')[2]}")
                for name, server in self.upstream
            ]
        self._write_nginx_config()
        proxy = self.group.start("nginx", self._nginx_argv(), log_dir=self.log_dir)
        self.children.append(proxy)
        nginx_url = f"http://{HOST}:{nginx_port}"
        await wait_healthy(proxy, f"{nginx_url}/healthz", log=self.layout.error_log)
        self.endpoints = Endpoints(nginx_url, services, part_urls)
        return self.endpoints

    def _named_backend(self) -> str:
        """The backend nginx finds by DNS name ("" = by address); needs the dns part."""
        if not self.variant.nginx.dns:
            return ""
        backend = self.variant.nginx.backend
        if "dns" not in self.variant.parts:
            raise LabError(f"nginx dns = {self.variant.nginx.dns} needs the dns part")
        replicas = [s.replicas for s in self.variant.services if s.name == backend]
        if replicas != [1]:
            raise LabError(f"nginx finds {backend} by DNS name: it must have one replica")
        return backend

    async def _publish_names(self) -> None:
        """Write every named replica's address to dnsmasq's hosts file, have it re-read
        the file (SIGHUP), and wait until it answers with them."""
        backend = self.variant.nginx.backend
        (address,) = self.addresses.values()
        dns.write_hosts(self.prefix / "dns" / "hosts", {dns.name_of(backend): address})
        (server,) = self.processes("dns")
        os.kill(server.pid, signal.SIGHUP)
        await dns.wait_answer(server, dns.name_of(backend), address)

    def _nginx_argv(self) -> list[str]:
        """nginx's command line; with names, in a namespace whose resolver is dnsmasq."""
        argv = nginx.nginx_argv(self.layout)
        if not self.variant.nginx.dns:
            return argv
        resolv_conf = self.prefix / "resolv.conf"
        dns.write_resolv_conf(resolv_conf)
        return dns.namespaced(argv, resolv_conf)

    def _write_nginx_config(self) -> None:
        """Render nginx's config with the upstream's servers (less the removed ones),
        write it and `nginx -t` it; on a rejection the previous config stays."""
        spec, servers = nginx.without_servers(
            nginx.reweighted(self.variant.nginx, self.weights),
            [server for _, server in self.upstream],
            self.removed,
        )
        config = nginx.render_config(
            spec,
            lab=self.lab.name,
            variant=self.variant.name,
            listen=self.listen,
            servers=servers,
            layout=self.layout,
        )
        previous = self.layout.conf.read_text() if self.layout.conf.exists() else None
        nginx.write_config(config, self.layout)
        try:
            nginx.run_config_test(self._nginx_argv()[:-2] + ["-t", "-q"], self.layout.conf)
        except LabError:
            if previous is not None:
                self.layout.conf.write_text(previous)
            raise

    async def remove(self, service: str, replica: int | None) -> list[str]:
        """Mid-run, take replicas of nginx's backend out of its upstream, as a scale-in
        does: render the config without them, `nginx -t` it and reload nginx (SIGHUP:
        new workers route by the new upstream, the old ones finish the requests they
        hold and exit). The replicas keep running; returns their names."""
        if service != self.variant.nginx.backend:
            raise LabError(
                f"cannot remove {service}: nginx's upstream is {self.variant.nginx.backend}"
            )
        names = {c.name for c in self.processes(service, replica)}
        hit = {i for i, (name, _) in enumerate(self.upstream) if name in names}
        before = set(self.removed)
        self.removed |= hit
        try:
            await asyncio.to_thread(self._write_nginx_config)
        except LabError:
            self.removed = before
            raise
        (proxy,) = self.processes("nginx")
        os.kill(proxy.pid, signal.SIGHUP)
        return [self.upstream[i][0] for i in sorted(hit)]

    async def reweight(self, weights: tuple[int, ...]) -> None:
        """Mid-run, new weights for nginx's upstream servers (0 = down): the config
        rendered with them, `nginx -t`, then a reload (SIGHUP), as `remove` does."""
        before = self.weights
        self.weights = nginx.checked_weights(weights, len(self.upstream))
        try:
            await asyncio.to_thread(self._write_nginx_config)
        except LabError:
            self.weights = before
            raise
        (proxy,) = self.processes("nginx")
        os.kill(proxy.pid, signal.SIGHUP)

    async def move(self, service: str, replica: int | None) -> list[str]:
        """Mid-run, move nginx's backend (found by DNS name) to the next loopback address,
        as a redeploy on a new host does: a new process there on the same port, ready;
        then its name points there (hosts file, SIGHUP to dnsmasq, answered); then the
        old process is killed (SIGKILL: its host is gone). Returns the replica's name."""
        if not self.variant.nginx.dns or service != self.variant.nginx.backend:
            raise LabError(f"cannot move {service}: only nginx's backend, found by DNS name")
        found = self.processes(service, replica)
        if len(found) != 1:
            raise LabError(f"cannot move {service}: name one replica (it has {len(found)})")
        (old,) = found
        argv, url = self.launches[old.name]
        address = self.addresses[old.name]
        later = dns.BACKEND_ADDRESSES[dns.BACKEND_ADDRESSES.index(address) + 1 :]
        if not later:
            raise LabError(f"cannot move {old.name}: no loopback address left")
        argv = [*argv[:-1], later[0]]  # its last option is --host ADDRESS
        url = url.replace(f"//{address}:", f"//{later[0]}:")
        child = self.group.start(old.name, argv, cwd=REPO_ROOT, log_dir=self.log_dir)
        self.children.append(child)
        await wait_healthy(child, f"{url}/readyz")
        self.addresses[old.name] = later[0]
        self.launches[old.name] = (argv, url)
        await self._publish_names()
        self.children.remove(old)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(old.pid, signal.SIGKILL)  # the old host is gone, not drained
        await asyncio.to_thread(self.group.stop, old)
        if self.endpoints is not None:
            index = int(old.name.rpartition("-")[2]) - 1
            self.endpoints.services[service][index] = url
        return [old.name]

    async def reload(self) -> list[str]:
        """Mid-run, reload nginx (SIGHUP): its config is read again, names resolved anew."""
        (proxy,) = self.processes("nginx")
        os.kill(proxy.pid, signal.SIGHUP)
        return [proxy.name]

    def processes(self, service: str, replica: int | None = None) -> list[Child]:
        """The running children of a service (`api` -> api-1, api-2, ...) or of a part."""
        if replica is not None:
            found = [c for c in self.children if c.name == f"{service}-{replica + 1}"]
        else:
            found = [c for c in self.children if _belongs_to(c.name, service)]
        if not found:
            which = service if replica is None else f"{service} replica {replica}"
            raise LabError(f"no process for {which} in this topology")
        return found

    async def halt(self, service: str, replica: int | None, action: FaultAction) -> list[str]:
        """Mid-run, "stop" (SIGTERM: a clean shutdown, waited for) or "kill" (SIGKILL: a
        crash) a service's processes or a part; returns the names of those hit. They stay
        in `children`, so `stop()` still reaps them."""
        hit = self.processes(service, replica)
        if action == "kill":
            for child in hit:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
        await asyncio.gather(*(asyncio.to_thread(self.group.stop, child) for child in hit))
        return [child.name for child in hit]

    async def resume(self, service: str, replica: int | None) -> list[str]:
        """Mid-run, start again the replicas of a service that a stop or kill ended, on
        the same port with the same options; return once each answers /readyz."""
        ended = [c for c in self.processes(service, replica) if not c.alive()]
        if not ended:
            raise LabError(f"cannot start {service}: no replica of it has stopped")
        started = []
        for old in ended:
            if old.name not in self.launches:
                raise LabError(f"cannot start {old.name} again: only services can be")
            argv, url = self.launches[old.name]
            child = self.group.start(old.name, argv, cwd=REPO_ROOT, log_dir=self.log_dir)
            self.children[self.children.index(old)] = child
            started.append(wait_healthy(child, f"{url}/readyz"))
        await asyncio.gather(*started)
        return [c.name for c in ended]

    def log_files(self) -> dict[str, Path]:
        """Every log this topology writes to while it runs, by name: nginx's error and
        access logs (in its temp prefix until `stop()` copies them to `nginx/`), then
        each process's output (services, parts such as redis, nginx's own stderr)."""
        files = {"nginx-error": self.layout.error_log, "nginx-access": self.layout.access_log}
        for child in self.children:
            files["nginx-output" if child.name == "nginx" else child.name] = child.log_path
        return {name: path.resolve() for name, path in files.items()}

    def worker_containers(self) -> None:
        """Locust workers run as local processes beside the services."""
        return None

    def stop(self) -> None:
        """Stop nginx first (no new traffic), then the services; keep nginx's files."""
        for child in reversed(self.children):
            self.group.stop(child)
        self.children.clear()
        if self.prefix.exists():
            target = self.artifacts_dir / "nginx"
            target.mkdir(parents=True, exist_ok=True)
            for path in (self.layout.conf, self.layout.error_log, self.layout.access_log):
                if path.exists():
                    shutil.copy2(path, target / path.name)
            shutil.rmtree(self.prefix, ignore_errors=True)


def _belongs_to(child_name: str, service: str) -> bool:
    prefix, _, index = child_name.rpartition("-")
    return child_name == service or (prefix == service and index.isdigit())


async def wait_healthy(child: Child, url: str, log: Path | None = None) -> None:
    """Poll `url` until it answers 200; fail fast with the log's tail if the process dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            if not child.alive():
                tail = _tail(log) if log else child.log_tail()
                raise StartupError(f"{child.name} exited during startup: {tail or 'no output'}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{child.name} not healthy at {url} after {STARTUP_TIMEOUT_S:g} s"
                )
            await asyncio.sleep(0.05)


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])
    except OSError:
        return ""
