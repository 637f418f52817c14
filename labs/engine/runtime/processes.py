"""Child processes that cannot outlive the runner.

Every child runs in its own session (a terminal's Ctrl-C reaches only the runner,
which then stops the children in order) and gets SIGTERM from the kernel if the
runner dies without cleaning up (PR_SET_PDEATHSIG). Each child also carries
LAB_RUN_ID in its environment, so a test or `lab down` can find what a run left.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
INTERRUPT_GRACE_S = 2.0
"""After Ctrl-C or SIGTERM, how long the children get to exit before SIGKILL: a run
that was interrupted keeps no results, so nothing is worth waiting longer for."""
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class ProcessGroup:
    """Starts children and stops all of them, together, on any exit path."""

    def __init__(self, run_id: str, log_dir: Path) -> None:
        self.run_id = run_id
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.kill_at: float | None = None
        """Set by `interrupt()`: the monotonic time after which a child still running
        is SIGKILLed, whoever stops it."""

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
    ) -> Child:
        """Start `argv`; its output goes to `<log_dir or the group's>/<name>.log`."""
        log_dir = log_dir or self.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        child_env = {**os.environ, **(env or {}), "LAB_RUN_ID": self.run_id}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.alive()]

    def describe(self) -> str:
        """What is running, by kind, newest first: "3 locust, 2 api, nginx, redis"."""
        counts: dict[str, int] = {}
        for child in reversed(self.children):
            if child.alive():
                kind = child.name.rstrip("0123456789").removesuffix("-") or child.name
                counts[kind] = counts.get(kind, 0) + 1
        return ", ".join(f"{n} {kind}" if n > 1 else kind for kind, n in counts.items())

    def interrupt(self, grace_s: float = INTERRUPT_GRACE_S) -> str:
        """The run was interrupted: SIGTERM every running child at once (not one after
        another), and SIGKILL whatever still runs `grace_s` later, when it is stopped.
        Returns what was running (`describe()`); "" if already interrupted."""
        if self.kill_at is not None:
            return ""
        running = self.describe()
        self.kill_at = time.monotonic() + grace_s
        for child in self.children:
            if child.alive():
                _signal_group(child.pid, signal.SIGTERM)
        return running

    def _grace(self, grace_s: float) -> float:
        if self.kill_at is None:
            return grace_s
        return max(0.0, min(grace_s, self.kill_at - time.monotonic()))

    def stop(self, child: Child, grace_s: float = 5.0) -> None:
        stop_process_group(child.process, self._grace(grace_s))

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM every child at once and wait for them together: the slowest one's
        grace, not the sum of all of them."""
        stop_process_groups([c.process for c in reversed(self.children)], self._grace(grace_s))
        self.children.clear()


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the child's whole process group (nginx workers too), then SIGKILL."""
    if process.poll() is not None:
        _reap_group(process.pid)
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    _reap_group(process.pid)


def stop_process_groups(processes: Sequence[subprocess.Popen[bytes]], grace_s: float) -> None:
    """`stop_process_group` for many at once: SIGTERM all, wait for all together at most
    `grace_s`, SIGKILL the rest."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in running) and time.monotonic() < deadline:
        time.sleep(0.02)
    for process in running:
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGKILL)
    for process in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    for process in processes:
        _reap_group(process.pid)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap_group(pgid: int) -> None:
    """Kill anything left in a finished child's group (e.g. an nginx worker)."""
    _signal_group(pgid, signal.SIGKILL)


def kill_pids(pids: Sequence[int], grace_s: float = 3.0) -> None:
    """Stop processes this runner did not start itself (left by a killed run)."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def processes_with_run_id(run_id: str) -> list[int]:
    """Live processes whose environment carries LAB_RUN_ID=run_id (Linux /proc)."""
    needle = f"LAB_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
