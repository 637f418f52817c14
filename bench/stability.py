"""How stable is each lab check? `lab check LAB --repeat N --json` per lab, on a quiet
machine, with one of the two cores kept busy by another process, and on the compose
topology; stored per lab and rendered as markdown tables.

    python -m bench.stability --repeat 10 [--modes quiet busy compose] [--labs a b]
    python -m bench.stability --render          # the tables from what is stored

Every lab's measurement is saved as it finishes (bench/stability/<mode>/<lab>.json, with
the commit it ran at), so a long measurement can stop and resume: a lab already measured
with the same --repeat at the same source is skipped. The tables say, per check, how many
runs it passed and the min / median / max of the number it judges: the measured proof of
"10 out of 10 on a noisy 2-core machine". A row measured at a source that has changed
since is marked stale, and a lab never measured is listed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from labs.engine.errors import LabError
from labs.engine.model.catalog import all_labs
from labs.engine.reporting.stability_store import (
    MODES,
    Stored,
    band,
    changed_since,
    git,
    uncommitted,
)

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def busy_core(enabled: bool) -> Iterator[int | None]:
    """One process spinning for as long as the block runs, at the lab's own priority: it
    takes its share of the two cores whenever the lab wants them (a nice 19 spinner would
    yield them at once, and measure almost nothing). Yields its pid (None: not enabled)."""
    if not enabled:
        yield None
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        yield spinner.pid
    finally:
        os.killpg(spinner.pid, signal.SIGKILL)
        spinner.wait()


def measure(mode: str, lab: str, repeat: int) -> Stored:
    command = [sys.executable, "-m", "labs.engine.cli", "check", lab, "--repeat", str(repeat)]
    command += ["--json", *(["--topology", "compose"] if mode == "compose" else [])]
    stamp, started = time.strftime("%Y-%m-%d %H:%M"), time.monotonic()
    commit = git("rev-parse", "--short", "HEAD").strip()
    with busy_core(mode == "busy"):
        stdout, stderr = run_forwarding_signals(command)
    if not stdout.strip():
        raise SystemExit(f"stability: lab check {lab} printed nothing: {stderr[-500:]}")
    (document,) = json.loads(stdout)["labs"]
    seconds = round(time.monotonic() - started, 1)
    return Stored(mode, lab, repeat, commit, stamp, seconds, document)


def run_forwarding_signals(command: list[str]) -> tuple[str, str]:
    """Run `lab check`, its progress lines passed on to stderr as they come; SIGTERM or
    Ctrl-C here stops it the same way, so it cleans up. Returns (stdout, stderr's end)."""
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    tail: deque[str] = deque(maxlen=20)

    def relay() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            tail.append(line)
            print(f"  {line}", end="", file=sys.stderr, flush=True)

    relaying = threading.Thread(target=relay, daemon=True)
    relaying.start()
    previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        assert child.stdout is not None
        stdout = child.stdout.read()
        child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        child.wait()
        raise SystemExit("stability: interrupted; what was measured so far is stored") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    relaying.join(timeout=5)
    return stdout, "".join(tail)


def cell(check: dict | None, stale: bool = False) -> str:
    """One mode's result for one check: "10/10: 12 / 30 / 41" (passed runs: min / median /
    max of the judged number); a pass rate below every run in bold; "-" when not measured."""
    if check is None:
        return "-"
    passed = f"{check['passed']}/{check['runs']}"
    if check["passed"] < check["runs"]:
        passed = f"**{passed}**"
    numbers = band(check)
    return passed + (f": {numbers}" if numbers else "") + (" (stale)" if stale else "")


def table(documents: dict[str, dict[str, dict]], stale: dict[str, set[str]]) -> list[str]:
    """Every lab's checks, one row each, with the modes side by side: `documents[mode][lab]`
    is a lab's stored document, `stale[mode]` the labs whose source changed since."""
    modes = list(MODES)
    lines = [
        f"| lab / check | {' | '.join(modes)} |",
        f"|---|{'---|' * len(modes)}",
    ]
    for lab in [lab.name for lab in all_labs()]:
        by_mode = {
            mode: {c["name"]: c for c in documents.get(mode, {}).get(lab, {}).get("checks", [])}
            for mode in modes
        }
        names = list(dict.fromkeys(name for checks in by_mode.values() for name in checks))
        if not names:
            lines.append(f"| {lab} | {' | '.join('not measured yet' for _ in modes)} |")
        for name in names:
            cells = [cell(by_mode[m].get(name), lab in stale.get(m, ())) for m in modes]
            lines.append(f"| {lab} / {name} | {' | '.join(cells)} |")
    return [*lines, ""]


def render(repeat: int) -> tuple[list[str], bool]:
    """The markdown from what is stored: one table, the modes side by side, then where
    and when each lab was measured; True when every lab is measured in every mode with
    `repeat` runs at the current source and passed every run."""
    labs = [lab.name for lab in all_labs()]
    documents: dict[str, dict[str, dict]] = {mode: {} for mode in MODES}
    stale: dict[str, set[str]] = {mode: set() for mode in MODES}
    notes: dict[str, list[str]] = {lab: [] for lab in labs}
    complete = True
    for mode in MODES:
        for lab in labs:
            stored = Stored.load(mode, lab)
            if stored is None:
                complete = False
                continue
            documents[mode][lab] = stored.document
            changed = changed_since(stored.commit, lab)
            if changed:
                stale[mode].add(lab)
            complete &= not changed and stored.repeat == repeat and stored.document["passed"]
            note = f"{mode} {stored.repeat} runs at {stored.commit}, {stored.measured_at}, "
            note += f"{stored.seconds / 60:.0f} min"
            if changed:
                note += f" (STALE: {len(changed)} file(s) changed since, {changed[0]})"
            notes[lab].append(note)
    lines = [
        "# Stability of the lab checks",
        "",
        f"Each lab's `lab check --repeat {repeat}` on this {os.cpu_count()}-core machine, "
        "run by `make stability` (bench/stability.py); the raw runs are in "
        "bench/stability/<mode>/<lab>.json. Each cell is the runs that passed and the band "
        "of the number the check judges: min / median / max. A lab is stale when its "
        "folder, the services, nginx's templates or the loadtests/ files it runs (its "
        "locustfiles and what they import) changed after the commit it was measured at.",
        "",
        *[
            f"- **{mode}**: {title}: {len(documents[mode])} of {len(labs)} labs measured, "
            f"{len(documents[mode]) - len(stale[mode])} at their current source"
            for mode, title in MODES.items()
        ],
        "",
        *table(documents, stale),
        "Measured:",
        "",
        *[f"- {lab}: {'; '.join(notes[lab])}" for lab in labs if notes[lab]],
    ]
    return [*lines, ""], complete


def expected(mode: str, lab: str, repeat: int) -> str:
    """How long the lab's last record in this mode (else in any mode) says `repeat` runs
    take, e.g. ", ~12 min (10 runs took 11.8 min at aea847f)"; "" when none is stored."""
    records = [Stored.load(m, lab) for m in (mode, *(m for m in MODES if m != mode))]
    record = next((r for r in records if r is not None), None)
    if record is None:
        return ""
    minutes = record.seconds / 60
    where = "" if record.mode == mode else f" {record.mode}"
    return (
        f", ~{minutes * repeat / record.repeat:.0f} min ({record.repeat} runs took "
        f"{minutes:.1f} min{where} at {record.commit})"
    )


def measure_missing(modes: Sequence[str], labs: Sequence[str], repeat: int, again: bool) -> None:
    """Measure and store each lab in each mode, unless it is stored with `repeat` runs
    at its current source (and not `again`)."""
    for mode in modes:
        for lab in labs:
            stored = Stored.load(mode, lab)
            fresh = stored and stored.repeat == repeat and not changed_since(stored.commit, lab)
            if fresh and not again:
                print(f"stability: {mode} {lab}: stored at {stored.commit}, skipped")
                continue
            if dirty := uncommitted(lab):
                raise LabError(f"{lab}: commit first, its source has changes: {dirty[0]}")
            estimate = expected(mode, lab, repeat)
            print(f"stability: {mode} {lab}: {repeat} runs{estimate} ...", flush=True)
            result = measure(mode, lab, repeat)
            result.save()
            verdict = "all passed" if result.document["passed"] else "NOT all passed"
            minutes = result.seconds / 60
            print(f"stability: {mode} {lab}: {verdict} in {minutes:.1f} min", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=10, help="runs per lab (default 10)")
    parser.add_argument("--labs", nargs="*", default=[], help="labs (default: all)")
    parser.add_argument("--modes", nargs="*", default=["quiet", "busy"], choices=list(MODES))
    parser.add_argument("--render", action="store_true", help="only write the tables")
    parser.add_argument("--again", action="store_true", help="re-measure stored labs too")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "stability.md")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be from 1 to 50")
    known = [lab.name for lab in all_labs()]
    if unknown := sorted(set(args.labs) - set(known)):
        parser.error(f"unknown lab(s): {', '.join(unknown)} (known: {', '.join(known)})")
    try:
        if not args.render:
            measure_missing(args.modes, args.labs or known, args.repeat, args.again)
        lines, complete = render(args.repeat)
    except LabError as exc:
        print(f"stability: error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text("\n".join(lines))
    verdict = "complete, all stable" if complete else "incomplete or not all stable"
    print(f"stability: wrote {args.out}; {verdict}")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
