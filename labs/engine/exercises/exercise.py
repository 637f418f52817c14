"""Exercises: the learner fixes the broken variant themselves, and `lab grade`
runs their edit against the lab's own load and says whether the fix holds.

exercises/<lab>/ holds the editable settings file (TOML), TASK.md, and how many
hints have been shown. Grading runs the untouched broken variant ("before") and
the learner's edit ("after") side by side, so the verdict compares two numbers
measured on the same machine at the same time; when "before" did not show the failure
this time, the grade is void (not a pass). A settings file is checked against the keys
the exercise's own file has: an unknown one (a typo) is refused, not ignored.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.errors import LabError
from labs.engine.model.spec import Exercise, Lab, Variant
from labs.engine.runner import RunOptions, RunOutcome, run_lab
from labs.engine.topology import nginx


def exercises_root() -> Path:
    return Path(os.environ.get("LAB_EXERCISES_DIR", Path.cwd() / "exercises"))


def exercise_of(lab: Lab) -> Exercise:
    if lab.exercise is None:
        raise LabError(f"lab {lab.name} has no exercise yet")
    return lab.exercise


@dataclass(frozen=True)
class Workspace:
    lab: Lab

    @property
    def directory(self) -> Path:
        return exercises_root() / self.lab.name

    @property
    def settings(self) -> Path:
        return self.directory / exercise_of(self.lab).file_name

    @property
    def task(self) -> Path:
        return self.directory / "TASK.md"

    @property
    def hints_shown(self) -> Path:
        return self.directory / ".hints-shown"


def task_text(lab: Lab) -> str:
    exercise = exercise_of(lab)
    workspace = Workspace(lab)
    return (
        f"# Exercise: {lab.title}\n\n{exercise.task}\n\n"
        f"Edit `{workspace.settings}`, then run `lab grade {lab.name}`.\n"
        f"Stuck? `lab hint {lab.name}` ({len(exercise.hints)} hints, gentle first); "
        f"`lab solution {lab.name}` shows the answer.\n"
    )


def create(lab: Lab, reset: bool = False) -> tuple[Workspace, bool]:
    """Write the broken variant's settings; keep a learner's edits unless `reset`.
    Returns the workspace and whether files were (re)written."""
    exercise = exercise_of(lab)
    workspace = Workspace(lab)
    if workspace.settings.exists() and not reset:
        return workspace, False
    try:
        workspace.directory.mkdir(parents=True, exist_ok=True)
        workspace.settings.write_text(exercise.settings(lab.variant(exercise.broken)))
        workspace.task.write_text(task_text(lab))
        workspace.hints_shown.unlink(missing_ok=True)
    except OSError as exc:
        raise LabError(f"cannot write {workspace.directory}: {exc.strerror}") from None
    return workspace, True


def next_hint(lab: Lab) -> tuple[int, str]:
    """The next hint (1-based number, text); after the last one, the last again."""
    hints = exercise_of(lab).hints
    if not hints:
        raise LabError(f"lab {lab.name} has no hints")
    workspace = Workspace(lab)
    try:
        shown = int(workspace.hints_shown.read_text())
    except (OSError, ValueError):
        shown = 0
    number = min(shown + 1, len(hints))
    if workspace.directory.is_dir():
        workspace.hints_shown.write_text(str(number))
    return number, hints[number - 1]


def solution_diff(lab: Lab) -> str:
    exercise = exercise_of(lab)
    before = exercise.settings(lab.variant(exercise.broken)).splitlines(keepends=True)
    after = exercise.settings(lab.variant(exercise.fixed)).splitlines(keepends=True)
    name = exercise.file_name
    return "".join(
        difflib.unified_diff(before, after, f"{exercise.broken}/{name}", f"{exercise.fixed}/{name}")
    )


def dotted_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of parsed TOML as a dotted path, tables included, in file order:
    {"nginx": {"upstream": {"keepalive": 32}}} -> nginx, nginx.upstream,
    nginx.upstream.keepalive. Arrays are values: their items are not walked."""
    keys = []
    for name, value in data.items():
        key = f"{prefix}{name}"
        keys.append(key)
        if isinstance(value, Mapping):
            keys.extend(dotted_keys(value, f"{key}."))
    return keys


def unknown_key(given: Sequence[str], known: Sequence[str]) -> str | None:
    """A one-line complaint about the first key of `given` that `known` lacks (a key the
    exercise would silently ignore, such as a typo), with the keys known beside it."""
    unknown = next((key for key in given if key not in known), None)
    if unknown is None:
        return None
    table = unknown.rpartition(".")[0]
    beside = [key for key in known if key.rpartition(".")[0] == table]
    return f"unknown key {unknown} (known: {', '.join(beside)})"


def missing_key(exc: KeyError, known: Sequence[str], given: Sequence[str]) -> str:
    """A KeyError from an exercise's `apply` as one line without str(KeyError)'s quotes:
    its message as is ("api.keepalive_timeout_s is missing", from labs.engine.exercises.edits), or,
    for a bare key a lab looked up itself (data["breaker"]), the dotted key that is missing."""
    message = str(exc.args[0]) if exc.args else "a key is missing"
    if " " in message:
        return message
    missing = [k for k in known if k not in given and k.rpartition(".")[2] == message]
    return f"{missing[0] if missing else message} is missing"


def load_edit(lab: Lab, path: Path | None = None) -> Variant:
    """The learner's settings file as a variant; one-line errors for bad files."""
    exercise = exercise_of(lab)
    path = path or Workspace(lab).settings
    if not path.is_file():
        raise LabError(f"{path} not found; start with `lab exercise {lab.name}`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{path}: {exc}") from None
    broken = lab.variant(exercise.broken)
    known = dotted_keys(tomllib.loads(exercise.settings(broken)))
    if problem := unknown_key(dotted_keys(data), known):
        raise LabError(f"{path}: {problem}")
    try:
        edited = exercise.apply(broken, data)
    except KeyError as exc:
        raise LabError(f"{path}: {missing_key(exc, known, dotted_keys(data))}") from None
    except (ValueError, TypeError) as exc:
        raise LabError(f"{path}: {exc}") from None
    return replace(edited, name="after", summary="your edit", twin="")


def check_nginx_config(lab: Lab, variant: Variant) -> None:
    """`nginx -t` on the edited variant's config before anything starts, so a
    rejected value comes back as nginx's own message and a line the learner can
    open (exercises/<lab>/rendered/nginx.conf)."""
    layout = nginx.NginxLayout(Workspace(lab).directory / "rendered")
    text = nginx.render_config(
        variant.nginx, lab=lab.name, variant=variant.name, listen="127.0.0.1:1",
        servers=["127.0.0.1:2"], layout=layout,
    )  # fmt: skip
    nginx.write_config(text, layout)
    nginx.test_config(layout)


@dataclass(frozen=True)
class Grade:
    passed: bool
    verdict: str
    outcome: RunOutcome | None


def grade(lab: Lab, options: RunOptions, path: Path | None = None) -> Grade:
    exercise = exercise_of(lab)
    edited = load_edit(lab, path)
    for guard in exercise.guards:
        reason = guard(edited)
        if reason:
            return Grade(False, f"not a fix: {reason}", None)
    check_nginx_config(lab, edited)
    before = replace(lab.variant(exercise.broken), name="before", twin="")
    graded = replace(
        lab,
        name=f"{lab.name}-grade",
        variants=(before, edited),
        checks=(),
        parallel_variants=exercise.grade_in_parallel,
    )
    outcome = run_lab(graded, replace(options, variants=()))
    passed, verdict = judge(exercise, outcome.results["before"], outcome.results["after"], lab.name)
    return Grade(passed, verdict, outcome)


def judge(
    exercise: Exercise, before: VariantResult, after: VariantResult, lab_name: str
) -> tuple[bool, str]:
    """(passed, verdict) for a graded pair of runs. The edit is judged only against a
    "before" that showed the failure: when the untouched broken settings held this time
    (a quiet machine, an unlucky race), "after" holding proves nothing, and the grade is
    void (not passed) whatever "after" did."""
    measured_before, measured_after = exercise.measure(before), exercise.measure(after)
    if exercise.holds(before):
        return False, (
            "void: the untouched broken settings did not reproduce the failure this time "
            f"(before: {measured_before}; after: {measured_after}), so this run cannot tell "
            f"whether your change fixed it; run `lab grade {lab_name}` again"
        )
    if exercise.holds(after):
        return True, (
            f"before your change: {measured_before}; after: {measured_after} - the fix holds"
        )
    return False, (
        f"before your change: {measured_before}; after your change: still {measured_after}; "
        f"expected {exercise.expected} - {exercise.advice}"
    )
