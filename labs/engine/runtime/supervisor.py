"""The process behind `lab up`: holds one variant's topology up until `lab down`.

`lab up` starts this detached and returns once the state file says "ready"; the
services and nginx are this process's children and die with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.live import server as live
from labs.engine.load.distributed import check_workers, start_web_ui
from labs.engine.model.catalog import get_lab
from labs.engine.model.spec import Variant
from labs.engine.runtime import control
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.runtime.signals import Interrupted, interrupts_raise, run_interruptible
from labs.engine.runtime.state import state_dir, up_file, up_log, write_json_atomic
from labs.engine.topology.base import TOPOLOGIES, Topology, make_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs.engine.runtime.supervisor")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--topology", choices=TOPOLOGIES, default="local")
    parser.add_argument("--locust-workers", type=int, default=0)
    args = parser.parse_args(argv)

    record = {
        "run_id": args.run_id,
        "pid": os.getpid(),
        "lab": args.lab,
        "variant": args.variant,
        "topology": args.topology,
        "status": "starting",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(up_file(), record, private=True)
    logs = state_dir() / "up" / args.run_id
    group = ProcessGroup(args.run_id, logs / "logs")
    topology = None
    with interrupts_raise():
        try:
            lab = get_lab(args.lab)
            variant = lab.variant(args.variant)
            topology = make_topology(args.topology, lab, variant, group, logs, args.port)
            record["locust_workers"] = check_workers(args.locust_workers)
            run_interruptible(hold(topology, variant, group, record, logs))
        except LabError as exc:
            record.update(status="failed", error=str(exc))
            write_json_atomic(up_file(), record, private=True)
            return 2
        except Interrupted:
            return 0
        finally:
            if topology is not None:
                topology.stop()
            group.stop_all()
            if record["status"] != "failed":
                up_file().unlink(missing_ok=True)


async def hold(
    topology: Topology, variant: Variant, group: ProcessGroup, record: dict, logs: Path
) -> None:
    """Start the topology, then the control endpoint (labs.engine.runtime.control: `lab fault`)
    and the live dashboard (labs.engine.live) on one 127.0.0.1 port of their own; say
    "ready" in the state file, then wait, in this one event loop, until a signal
    cancels it: the topology's stop/kill/start actions run here, where it lives."""
    endpoints = await topology.start()
    if workers := int(record.get("locust_workers", 0)):
        containers = topology.worker_containers()
        web, port = start_web_ui(
            group, variant.load, endpoints.nginx_url, workers, logs / "logs", containers
        )
        record.update(locust={"web_ui": web, "master_port": port, "workers": workers})
    ctl = control.Control(variant, endpoints, topology)
    await ctl.read_baselines()

    def publish() -> None:
        record.update(endpoints=endpoints.to_dict(), pids=group.pids())
        write_json_atomic(up_file(), record, private=True)

    ctl.on_change = publish
    app = control.create_app(ctl)
    title = f"{record['lab']} / {record['variant']}"
    dashboard = live.attach(app, topology, variant, endpoints, ctl.events, title)
    server, url = await live.serve_app(app)
    try:
        record.update(status="ready", endpoints=endpoints.to_dict(), logs=str(logs))
        record.update(control={"url": url, "token": ctl.token}, dashboard=f"{url}/")
        files = {**topology.log_files(), "supervisor": up_log(record["run_id"])}
        record["log_files"] = {name: str(path.resolve()) for name, path in files.items()}
        record["pids"] = group.pids()
        write_json_atomic(up_file(), record, private=True)
        await asyncio.Event().wait()
    finally:
        dashboard.cancel()
        await server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
