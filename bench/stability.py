"""How stable is each lab check? `lab check --repeat N --json`, once on a quiet machine
and once with one of the two cores kept busy by another process, as markdown tables.

    python -m bench.stability --repeat 10 [--labs keepalive-502 idempotency] [--out FILE]

The table says, per check, how many runs it passed and the min / median / max of the
number it judges: the measured proof of "10 out of 10 on a noisy 2-core machine".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from labs.engine.reporting.stability import fmt

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def busy_core(enabled: bool) -> Iterator[None]:
    """One process spinning at the lowest priority for as long as the block runs."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-c", "while True: pass"], start_new_session=True
    )
    try:
        yield
    finally:
        os.killpg(spinner.pid, signal.SIGKILL)
        spinner.wait()


def measure(labs: Sequence[str], repeat: int, busy: bool) -> dict:
    command = [sys.executable, "-m", "labs.engine.cli", "check", "--repeat", str(repeat), "--json"]
    command += list(labs) if labs else ["--all"]
    with busy_core(busy):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if not done.stdout.strip():
        raise SystemExit(f"stability: lab check printed nothing: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def table(document: dict, title: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| lab / check | passed | min | median | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for lab in document["labs"]:
        for check in lab["checks"]:
            passed = f"{check['passed']}/{check['runs']}"
            if check["passed"] < check["runs"]:
                passed = f"**{passed}**"
            band = [fmt(check[k]) for k in ("min", "median", "max")]
            lines.append(f"| {lab['lab']} / {check['name']} | {passed} | {' | '.join(band)} |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stability", description=__doc__)
    parser.add_argument("--repeat", type=int, default=10, help="runs per lab (default 10)")
    parser.add_argument("--labs", nargs="*", default=[], help="labs (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "stability.md")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be from 1 to 50")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "# Stability of the lab checks",
        "",
        f"{stamp} on {os.uname().nodename}: {os.cpu_count()} cores. Each lab's checks over "
        f"{args.repeat} runs of `lab check`; the band is the number each check judges "
        "(n/a: the check reports none).",
        "",
    ]
    all_passed = True
    for busy in (False, True):
        print(f"stability: {'one core busy' if busy else 'quiet'} ...", flush=True)
        document = measure(args.labs, args.repeat, busy)
        all_passed &= bool(document["passed"])
        title = "One core kept busy (nice 19 spinner)" if busy else "Quiet machine"
        lines += table(document, title)
    args.out.write_text("\n".join(lines))
    print(f"stability: wrote {args.out}; {'all stable' if all_passed else 'NOT all stable'}")
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
