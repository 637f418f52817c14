"""The compose topology: the same variant as the local topology, in Docker containers.

For each variant the engine renders nginx's config from the shared template and a
Compose file (labs.engine.topology.compose_file) into the variant's results folder, runs
`docker compose -p <unique project> up -d`, and waits until every replica and nginx
answer on their published 127.0.0.1 ports. Faults that the local topology does with
signals (stop, kill; pause for labs that want it) go through the docker SDK. `stop()`
saves nginx's logs and every container's output, then `compose down` removes the
project's containers and network; a label sweep catches anything left.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from labs.engine.errors import LabError, StartupError
from labs.engine.load.distributed import LOCUST_IMAGE, WorkerContainers
from labs.engine.model.spec import Lab, Variant
from labs.engine.topology import (
    compose_file,
    compose_moves,
    compose_reload,
    dockerenv,
    images,
    nginx,
)
from labs.engine.topology.base import Endpoints
from labs.engine.topology.containers import (
    STOP_TIMEOUT_S,
    log_tail,
    published_port,
    replica_of,
    save_logs,
)
from labs.engine.topology.ports import HOST, ensure_port_free

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

STARTUP_TIMEOUT_S = 60.0
COMPOSE_TIMEOUT_S = 180.0

IMAGES = (compose_file.SERVICES_IMAGE, compose_file.NGINX_IMAGE)
IMAGES_HINT = "build them: make images (or make images-offline without a registry)"


def preflight() -> None:
    """Fail before anything starts: no engine, no Compose, or images not built (or built
    from other sources than this checkout's: see images.py). The engine first: where
    none answers, that is the error to fix, whatever client is on PATH."""
    client = dockerenv.docker_client()
    try:
        dockerenv.compose_command()
        missing = dockerenv.missing_images(client, IMAGES)
        stale = images.out_of_date(client, ("services", "nginx"))
    finally:
        client.close()
    if missing:
        raise LabError(f"image(s) {', '.join(missing)} not found; {IMAGES_HINT}")
    if stale:
        raise LabError(f"{'; '.join(stale)}: {images.REBUILD}")


def project_name(run_id: str, variant: str) -> str:
    """Unique per run and variant (parallel variants each get a project)."""
    return re.sub(r"[^a-z0-9_-]", "-", f"lab-{run_id}-{variant}".lower())


class ComposeTopology:
    """One variant's containers. `start()` returns when all are healthy; `stop()` is
    idempotent and removes the project's containers and network."""

    def __init__(
        self,
        lab: Lab,
        variant: Variant,
        run_id: str,
        artifacts_dir: Path,
        nginx_port: int | None = None,
    ) -> None:
        self.lab = lab
        self.variant = variant
        self.run_id = run_id
        self.artifacts_dir = artifacts_dir.resolve()
        self.nginx_port = nginx_port
        self.project = project_name(run_id, variant.name)
        self.compose_path = self.artifacts_dir / "compose" / "docker-compose.yml"
        self.conf_path = self.artifacts_dir / "nginx" / "nginx.conf"
        self.log_dir = self.artifacts_dir / "logs"
        self.client: docker.DockerClient | None = None
        self._started = False
        self._up: asyncio.subprocess.Process | None = None
        self.endpoints: Endpoints | None = None
        self.servers: list[str] = []
        """nginx's upstream servers (replica:port), in replica order."""
        self.removed: set[int] = set()
        """Indices in `servers` that a "remove" fault took out."""
        self.weights: tuple[int, ...] | None = None  # as a controller set them (reweight)

    # --- start ------------------------------------------------------------------------

    async def start(self) -> Endpoints:
        if self.nginx_port is not None:
            ensure_port_free(self.nginx_port)
        self.client = await asyncio.to_thread(dockerenv.docker_client)
        labels = {dockerenv.RUN_LABEL: self.run_id, "lab.variant": self.variant.name}
        document, self.servers = compose_file.render(
            self.variant, nginx_conf=self.conf_path, labels=labels, nginx_port=self.nginx_port
        )
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.nginx_config())
        self.conf_path.chmod(0o644)  # read by the container's unprivileged user
        header = (
            f"Compose project {self.project}: {self.lab.name} / {self.variant.name}.\n"
            f"Rendered by labs.engine.topology.compose; inspect with\n"
            f"  docker compose -p {self.project} -f {self.compose_path} ps"
        )
        compose_file.write(document, self.compose_path, header)
        dockerenv.write_marker(self.project, self.run_id, self.compose_path)
        self._started = True
        await self._compose_up()
        return await self._wait_ready()

    def nginx_config(self) -> str:
        """nginx's config for the container: the upstream's servers less the removed."""
        spec = nginx.reweighted(self.variant.nginx, self.weights)
        spec, servers = nginx.without_servers(spec, self.servers, self.removed)
        return nginx.render_config(
            spec,
            lab=self.lab.name,
            variant=self.variant.name,
            listen=f"0.0.0.0:{compose_file.NGINX_PORT}",
            servers=servers,
            layout=nginx.NginxLayout(Path(compose_file.NGINX_PREFIX)),
            user="",
            resolver=compose_file.DOCKER_DNS,
        )

    def compose_argv(self, *args: str) -> list[str]:
        return [
            *dockerenv.compose_command(),
            "-p",
            self.project,
            "-f",
            str(self.compose_path),
            *args,
        ]

    async def _compose_up(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "compose.log").open("ab") as log:
            self._up = await asyncio.create_subprocess_exec(
                *self.compose_argv("up", "-d", "--no-build"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches only the runner
            )
            try:
                code = await asyncio.wait_for(self._up.wait(), COMPOSE_TIMEOUT_S)
            finally:
                if self._up.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        self._up.kill()
        if code != 0:
            tail = log_tail(self.log_dir / "compose.log")
            raise StartupError(f"compose up failed for {self.project} (exit {code}): {tail}")

    def containers(self) -> dict[str, Container]:
        """Compose service name (api-1, nginx, redis) -> container."""
        assert self.client is not None
        selector = {"label": f"{dockerenv.PROJECT_LABEL}={self.project}"}
        found = self.client.containers.list(all=True, filters=selector)
        return {c.labels.get(dockerenv.SERVICE_LABEL, c.name): c for c in found}

    async def _wait_ready(self) -> Endpoints:
        containers = await asyncio.to_thread(self.containers)
        expected = set(compose_file.services_of(self.variant))
        if missing := sorted(expected - set(containers)):
            tail = log_tail(self.log_dir / "compose.log")
            raise StartupError(f"compose created no container for {', '.join(missing)}: {tail}")
        ports = {name: published_port(c) for name, c in containers.items()}
        services: dict[str, list[str]] = {}
        for spec in self.variant.services:
            names = [compose_file.replica_name(spec.name, r) for r in range(spec.replicas)]
            services[spec.name] = [f"http://{HOST}:{ports[n]}" for n in names]
        parts = {
            name: f"{compose_file.PARTS[name].scheme}://{HOST}:{ports[name]}"
            for name in compose_file.container_parts(self.variant)
        }
        checks = [(name, f"{url}/readyz") for name, url in _replica_urls(services)]
        nginx_url = f"http://{HOST}:{ports['nginx']}"
        await asyncio.gather(*(self.wait_healthy(name, url) for name, url in checks))
        for name in compose_file.container_parts(self.variant):
            await self._wait_container_healthy(name)
        await self.wait_healthy("nginx", f"{nginx_url}/healthz")
        self.endpoints = Endpoints(nginx_url, services, parts)
        return self.endpoints

    async def wait_healthy(self, name: str, url: str) -> None:
        """Poll `url` until 200; fail fast with the container's output if it exits."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            polls = 0
            while True:
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except (TimeoutError, aiohttp.ClientError):
                    pass
                polls += 1
                if polls % 10 == 0:
                    await self._fail_if_exited(name)
                if time.monotonic() > deadline:
                    raise StartupError(
                        f"{name} not healthy at {url} after {STARTUP_TIMEOUT_S:g} s "
                        f"({self.project})"
                    )
                await asyncio.sleep(0.05)

    async def _wait_container_healthy(self, name: str) -> None:
        """For parts: wait for Docker's own healthcheck."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            container = (await asyncio.to_thread(self.containers))[name]
            if container.attrs.get("State", {}).get("Health", {}).get("Status") == "healthy":
                return
            await self._fail_if_exited(name)
            await asyncio.sleep(0.25)
        raise StartupError(f"{name} not healthy after {STARTUP_TIMEOUT_S:g} s ({self.project})")

    async def _fail_if_exited(self, name: str) -> None:
        container = (await asyncio.to_thread(self.containers)).get(name)
        if container is not None and container.status in ("exited", "dead"):
            output = await asyncio.to_thread(container.logs, tail=3)
            tail = " | ".join(output.decode(errors="replace").strip().splitlines())
            raise StartupError(f"{name} exited during startup: {tail or 'no output'}")

    def worker_containers(self) -> WorkerContainers:
        """Locust workers as containers of this project (its `down` removes them)."""
        if self.client is None:
            raise LabError(f"compose project {self.project} is not started")
        if dockerenv.missing_images(self.client, [LOCUST_IMAGE]):
            raise LabError(
                f"image {LOCUST_IMAGE} not found; --locust-workers on compose runs "
                f"workers in it; {IMAGES_HINT}"
            )
        if stale := images.out_of_date(self.client, ("locust",)):
            raise LabError(f"{stale[0]}: {images.REBUILD}")
        labels = {dockerenv.PROJECT_LABEL: self.project, dockerenv.RUN_LABEL: self.run_id}
        return WorkerContainers(self.project, labels)

    # --- faults -------------------------------------------------------------------------

    def targets(self, service: str, replica: int | None) -> list[Container]:
        """The containers of a service (every replica) or of one replica; LabError if none."""
        containers = self.containers()
        if replica is not None:
            names = [compose_file.replica_name(service, replica)]
        else:
            names = [n for n in containers if n == service or replica_of(n, service)]
        found = [containers[n] for n in names if n in containers]
        if not found:
            which = service if replica is None else f"{service} replica {replica}"
            raise LabError(f"no container for {which} in project {self.project}")
        return found

    async def halt(self, service: str, replica: int | None, action: str) -> list[str]:
        """Mid-run, "stop" (SIGTERM, then SIGKILL after the grace: a clean shutdown),
        "kill" (SIGKILL: a crash), "pause" or "unpause" (freeze: connections hang, nothing
        is refused) a service's containers; returns the replica names hit."""
        hit = await asyncio.to_thread(self.targets, service, replica)

        def act(container: Container) -> None:
            if action == "stop":
                container.stop(timeout=STOP_TIMEOUT_S)
            elif action == "kill":
                container.kill()
            elif action == "pause":
                container.pause()
            elif action == "unpause":
                container.unpause()
            else:
                raise LabError(f"unknown fault action {action!r} for the compose topology")

        await asyncio.gather(*(asyncio.to_thread(act, c) for c in hit))
        return [c.labels.get(dockerenv.SERVICE_LABEL, c.name) for c in hit]

    async def resume(self, service: str, replica: int | None) -> list[str]:
        """Mid-run, start again the containers of a service that a stop or kill ended and
        wait until each answers /readyz. Docker publishes a restarted container on a new
        host port: the replica's URL in `endpoints` is updated in place, so the stats
        sampler and later faults reach it. nginx resolved the replica's name once, at
        start: it finds the container again because Docker hands a restarted container
        the lowest free address on the network, its own old one when replicas restart
        one at a time (measured on Docker 20.10)."""
        ended = [
            c
            for c in await asyncio.to_thread(self.targets, service, replica)
            if c.status in ("exited", "dead")
        ]
        if not ended:
            raise LabError(f"cannot start {service}: no container of it has stopped")
        names = [c.labels.get(dockerenv.SERVICE_LABEL, c.name) for c in ended]
        await asyncio.gather(*(asyncio.to_thread(c.start) for c in ended))
        containers = await asyncio.to_thread(self.containers)
        for name in names:
            url = f"http://{HOST}:{published_port(containers[name])}"
            if self.endpoints is not None and service in self.endpoints.services:
                index = int(name.rpartition("-")[2]) - 1
                self.endpoints.services[service][index] = url
            await self.wait_healthy(name, f"{url}/readyz")
        return names

    async def remove(self, service: str, replica: int | None) -> list[str]:
        """Mid-run, take replicas of nginx's backend out of its upstream, as a scale-in
        does: rewrite the mounted config without them (in place: the bind mount follows
        the file), `nginx -t` it inside the nginx container, then SIGHUP nginx (its PID
        1) to reload. The replicas' containers keep running; returns their names."""
        if service != self.variant.nginx.backend:
            raise LabError(
                f"cannot remove {service}: nginx's upstream is {self.variant.nginx.backend}"
            )
        names = {c.labels.get(dockerenv.SERVICE_LABEL, c.name) for c in
                 await asyncio.to_thread(self.targets, service, replica)}  # fmt: skip
        hit = {i for i, server in enumerate(self.servers) if server.split(":")[0] in names}
        before = set(self.removed)
        self.removed |= hit
        try:
            await asyncio.to_thread(self._reload)
        except LabError:
            self.removed = before
            raise
        return [self.servers[i].split(":")[0] for i in sorted(hit)]

    reweight = compose_reload.reweight  # new upstream weights, then a reload
    _reload = compose_reload.reload_nginx

    move = compose_moves.move  # a replica recreated with a new IP (the "move" fault)
    reload = compose_moves.reload

    def log_files(self) -> dict[str, Path]:
        """The logs written on this machine while the containers run: Compose's own.
        The containers' output and nginx's logs are saved to `logs/` and `nginx/` when
        the topology stops (live: `docker compose -p PROJECT logs -f`)."""
        return {"compose": self.log_dir / "compose.log"}

    # --- stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop nginx first (no new traffic), save the logs, remove everything. Idempotent."""
        if not self._started:
            return
        self._started = False
        if self._up is not None and self._up.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._up.kill()
        try:
            if self.client is not None:
                save_logs(self.containers(), self.log_dir, self.artifacts_dir / "nginx")
        except Exception:  # the engine went away: `down` and the sweep below still try
            pass
        finally:
            self._down()

    def _down(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (
            (self.log_dir / "compose.log").open("ab") as log,
            contextlib.suppress(OSError, subprocess.TimeoutExpired),
        ):
            subprocess.run(
                self.compose_argv("down", "--remove-orphans", "--timeout", "2"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=COMPOSE_TIMEOUT_S,
                start_new_session=True,
            )
        with contextlib.suppress(Exception):
            if self.client is None:
                self.client = dockerenv.docker_client()
            dockerenv.remove_project(self.client, self.project)
        dockerenv.drop_marker(self.project)
        if self.client is not None:
            self.client.close()
            self.client = None


def release_run(run_id: str) -> None:
    """After a run: remove whatever its projects left (an interrupted `start()`)."""
    dockerenv.sweep_compose(run_id)


def _replica_urls(services: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [
        (compose_file.replica_name(service, index), url)
        for service, urls in services.items()
        for index, url in enumerate(urls)
    ]
