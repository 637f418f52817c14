"""The measured stability of each lab's checks, as `make stability` stores it:
bench/stability/<mode>/<lab>.json, one `lab check LAB --repeat N --json` per lab and
mode, with the commit it ran at. bench/stability.py writes the records; `lab show`
quotes them under the guide."""

from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.catalog import get_lab
from labs.engine.model.spec import REPO_ROOT
from labs.engine.reporting.stability import fmt

STORE = REPO_ROOT / "bench" / "stability"
MODES = {
    "quiet": "Quiet machine (local topology)",
    "busy": "One core kept busy by a spinner at normal priority (local topology)",
    "compose": "Compose topology (quiet machine)",
}


@dataclass(frozen=True)
class Stored:
    mode: str
    lab: str
    repeat: int
    commit: str
    measured_at: str
    seconds: float
    document: dict
    """`lab check LAB --repeat N --json`'s document for the lab (its "checks": name,
    runs, passed, min, median, max)."""

    @staticmethod
    def path_of(mode: str, lab: str) -> Path:
        return STORE / mode / f"{lab}.json"

    def save(self) -> None:
        path = self.path_of(self.mode, self.lab)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, mode: str, lab: str) -> Stored | None:
        path = cls.path_of(mode, lab)
        if not path.exists():
            return None
        fields = json.loads(path.read_text())
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError as exc:
        raise LabError(f"git {args[0]}: {exc.strerror}") from None
    if done.returncode:
        raise LabError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def source_paths(lab: str) -> list[str]:
    """What a lab's experiment is: its folder, the services, nginx's templates and the
    loadtests/ files it runs. Engine changes do not make a record stale (`make test` runs
    every lab at every commit); guides and other .md files do not either."""
    return [f"labs/{lab.replace('-', '_')}", "services", "compose/nginx", *load_sources(lab)]


def load_sources(lab: str) -> list[str]:
    """The loadtests/ files `lab` runs: its variants' locustfiles and the loadtests
    modules they import, followed through, with the package's __init__.py."""
    pending = [variant.load.locustfile for variant in get_lab(lab).variants]
    seen = {"__init__.py"}
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += loadtests_imports(REPO_ROOT / "loadtests" / name)
    return [f"loadtests/{name}" for name in sorted(seen)]


def loadtests_imports(path: Path) -> list[str]:
    """The loadtests modules a file imports, as file names ("recorder.py"); [] when the
    file is missing."""
    try:
        tree = ast.parse(path.read_text())
    except OSError:
        return []
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "loadtests":
            modules += [f"loadtests.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append(node.module or "")
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    prefix = "loadtests."
    return [
        name.removeprefix(prefix).replace(".", "/") + ".py"
        for name in modules
        if name.startswith(prefix)
    ]


def changed_since(commit: str, lab: str) -> list[str]:
    """The lab's source files that changed from `commit` to HEAD."""
    names = git("diff", "--name-only", commit, "HEAD", "--", *source_paths(lab)).splitlines()
    return [name for name in names if not name.endswith(".md")]


def uncommitted(lab: str) -> list[str]:
    status = git("status", "--porcelain", "--", *source_paths(lab)).splitlines()
    return [line[3:] for line in status if not line.endswith(".md")]


def summary_lines(lab: str) -> list[str]:
    """What `lab show` prints: per mode, when and how often the lab was measured and
    each check's pass rate and band, or that it was not measured yet."""
    lines = []
    for mode in MODES:
        stored = Stored.load(mode, lab)
        if stored is None:
            lines.append(f"  {mode}: not measured yet")
            continue
        try:
            changed = changed_since(stored.commit, lab)
            stale = f"; STALE: {len(changed)} source file(s) changed since" if changed else ""
        except LabError as exc:
            stale = f"; cannot tell whether it is stale ({exc})"
        when = f"{stored.repeat} runs at {stored.commit}, {stored.measured_at}"
        lines.append(f"  {mode}: {when}{stale}")
        for check in stored.document.get("checks", []):
            numbers = band(check)
            passed = f"{check['passed']}/{check['runs']}"
            lines.append(f"    {passed} {check['name']}" + (f": {numbers}" if numbers else ""))
    return lines


def band(check: dict) -> str:
    """A stored check's "12 / 30 / 41": min / median / max of the number it judged over
    the runs ("" when it reports none)."""
    values = [check[k] for k in ("min", "median", "max")]
    return "" if all(v is None for v in values) else " / ".join(map(fmt, values))
