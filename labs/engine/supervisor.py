"""The process behind `lab up`: holds one variant's topology up until `lab down`.

`lab up` starts this detached and returns once the state file says "ready"; the
services and nginx are this process's children and die with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from labs.engine.catalog import get_lab
from labs.engine.errors import LabError
from labs.engine.processes import ProcessGroup
from labs.engine.signals import Interrupted, interrupts_raise, run_interruptible
from labs.engine.state import state_dir, up_file, up_log, write_json_atomic
from labs.engine.topology import TOPOLOGIES, make_topology


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs.engine.supervisor")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--topology", choices=TOPOLOGIES, default="local")
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
    write_json_atomic(up_file(), record)
    logs = state_dir() / "up" / args.run_id
    group = ProcessGroup(args.run_id, logs / "logs")
    topology = None
    with interrupts_raise():
        try:
            lab = get_lab(args.lab)
            variant = lab.variant(args.variant)
            topology = make_topology(args.topology, lab, variant, group, logs, args.port)
            endpoints = run_interruptible(topology.start())
            record.update(status="ready", endpoints=endpoints.to_dict(), logs=str(logs))
            files = {**topology.log_files(), "supervisor": up_log(args.run_id)}
            record["log_files"] = {name: str(path.resolve()) for name, path in files.items()}
            record["pids"] = group.pids()
            write_json_atomic(up_file(), record)
            while True:
                time.sleep(3600)
        except LabError as exc:
            record.update(status="failed", error=str(exc))
            write_json_atomic(up_file(), record)
            return 2
        except Interrupted:
            return 0
        finally:
            if topology is not None:
                topology.stop()
            group.stop_all()
            if record["status"] != "failed":
                up_file().unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
