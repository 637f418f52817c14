"""`lab fault`: inject faults into what `lab up` keeps running, by hand.

    lab fault api latency_ms=200          every api replica (its /admin/faults)
    lab fault api-2 error_status=503 error_rate=0.5
    lab fault api-1 --kill | --stop | --start
    lab fault api --move                  nginx's backend, found by DNS name, to a new address
    lab fault --reload                    nginx reads its config again (names resolved anew)
    lab fault --rollout                   deploys: the variant's rollout, as a run starts it
    lab fault --clear                     every fault switch back to its start-up settings

The command is checked here for its form (KEY=VALUE, numbers), then sent to the
supervisor of `lab up` (labs.engine.runtime.control), which knows the topology: it refuses an
unknown service or replica, and the service itself refuses an unknown key or a value
out of range; either way one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import urllib.error
import urllib.request

from labs.engine.analysis.stats import items, mapping, number
from labs.engine.errors import LabError
from labs.engine.runtime.control import NO_TARGET, TOKEN_HEADER
from labs.engine.runtime.processes import pid_alive
from labs.engine.runtime.state import read_json, up_file

KEY = re.compile(r"[a-z_][a-z0-9_]*")
REQUEST_TIMEOUT_S = 60.0
"""A start waits for the replica's health check; a stop for its clean shutdown."""


def parse_setting(text: str) -> tuple[str, int | float]:
    """`latency_ms=200` -> ("latency_ms", 200); anything else is a one-line LabError."""
    key, sep, value = text.partition("=")
    if not sep or not KEY.fullmatch(key):
        raise LabError(f"{text!r} is not KEY=VALUE (e.g. latency_ms=200)")
    number: int | float
    try:
        number = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        raise LabError(f"{key}: {value!r} is not a number")
    return key, number


def request_of(args: argparse.Namespace) -> dict[str, object]:
    """The control request a command line stands for."""
    action = args.action or ("clear" if args.clear else "settings")
    words = list(args.words)
    if action == "clear" and args.action:
        raise LabError("--clear takes no service, setting or other action")
    if action in NO_TARGET:
        if words:
            raise LabError(f"--{action} takes no service or setting")
        return {"action": action, "target": None}
    if not words:
        raise LabError("name a service or replica (e.g. api or api-2), or give --clear")
    target, rest = words[0], words[1:]
    if "=" in target:
        raise LabError(f"name a service or replica before {target!r} (e.g. api {target})")
    if action != "settings":
        if rest:
            raise LabError(f"--{action} takes a service or replica, no settings")
        return {"action": action, "target": target}
    if not rest:
        raise LabError(f"give {target} KEY=VALUE settings (e.g. latency_ms=200) or an action")
    settings = dict(parse_setting(word) for word in rest)
    return {"action": "settings", "target": target, "settings": settings}


def send(record: dict, request: dict[str, object]) -> dict[str, object]:
    """POST the request to the supervisor; its one-line refusal becomes a LabError."""
    control = record.get("control") or {}
    if not control.get("url"):
        raise LabError("what is up has no control endpoint (restart it: lab down, lab up)")
    http = urllib.request.Request(
        f"{control['url']}/control/fault",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json", TOKEN_HEADER: control.get("token", "")},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=REQUEST_TIMEOUT_S) as reply:
            return json.loads(reply.read())["event"]
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise LabError(message) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LabError(f"the supervisor of `lab up` did not answer ({reason})") from None


def describe(request: dict[str, object], event: dict[str, object]) -> str:
    action = request["action"]
    if action == "settings":
        settings = " ".join(f"{k}={v}" for k, v in mapping(request["settings"]).items())
        line = f"{request['target']}: {settings} (undo: lab fault --clear)"
        if event.get("skipped"):
            line += f"; not answering, skipped: {_names(event.get('skipped'))}"
        return line
    if action == "clear":
        line = f"cleared: {_names(event.get('processes')) or 'nothing to clear'}"
        if event.get("skipped"):
            line += f"; not answering, skipped: {_names(event.get('skipped'))}"
        return line
    done = {
        "kill": "killed", "stop": "stopped", "start": "started",
        "move": "moved to a new address:", "reload": "reloaded",
    }.get(str(action))  # fmt: skip
    if done is None:  # rollout: it goes on in the supervisor
        return "rollout started: its moves and gate readings show in the live dashboard"
    return f"{done} {_names(event.get('processes'))} ({number(event.get('took_s'), 0.0):.1f} s)"


def _names(value: object) -> str:
    return ", ".join(str(name) for name in items(value))


def cmd_fault(args: argparse.Namespace) -> int:
    request = request_of(args)  # bad form: fail before looking for what is up
    record = read_json(up_file())
    if not record or not pid_alive(int(record.get("pid", 0))):
        raise LabError("nothing is up (start a lab with `lab up LAB --variant V`)")
    event = send(record, request)
    print(describe(request, event))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    fault = commands.add_parser(
        "fault",
        help="inject a fault into what `lab up` runs (settings, kill/stop/start, move, "
        "reload, rollout, --clear)",
        description=(
            "Set a service's fault switch (its /admin/faults: latency_ms, error_status, "
            "error_rate, outage_s, max_concurrent, ...), stop/kill/start a replica, move "
            "nginx's DNS-named backend to a new address, reload nginx, or clear every "
            "fault, on the topology `lab up` keeps running."
        ),
    )
    fault.add_argument(
        "words", nargs="*", metavar="SERVICE[-N] [KEY=VALUE ...]",
        help="api = every api replica, api-2 = the second; settings as KEY=VALUE",
    )  # fmt: skip
    actions = fault.add_mutually_exclusive_group()
    for name, text in [
        ("kill", "SIGKILL the replica(s): a crash"),
        ("stop", "SIGTERM the replica(s) and wait: a clean shutdown"),
        ("start", "start stopped or killed replica(s) again, same address"),
        (
            "move",
            "nginx's backend, found by DNS name (stale-dns), to a new address: its "
            "name points there, the old host is gone",
        ),
        ("reload", "reload nginx: its config read again, names in its upstream resolved anew"),
        (
            "rollout",
            "start the variant's rollout controller (deploys), as a run does at "
            "load start: it moves traffic through nginx reloads, and its gate rolls back",
        ),
    ]:
        actions.add_argument(f"--{name}", dest="action", action="store_const", const=name,
                             help=text)  # fmt: skip
    actions.add_argument("--clear", action="store_true",
                         help="every fault switch back to its settings at `lab up`")  # fmt: skip
    fault.set_defaults(handler=cmd_fault, action=None)
