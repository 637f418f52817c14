"""Running and judging: `lab run`, `lab check` (CI-style, --repeat, --junit), `lab demo`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from labs.engine.cli.output import LiveProgress, err, out, print_checks
from labs.engine.errors import LabError
from labs.engine.model.catalog import all_labs, get_lab
from labs.engine.model.spec import Lab
from labs.engine.reporting import junit, stability, terminal
from labs.engine.runner import RunOptions, RunOutcome, run_lab, select_variants, shortened

DEMO_LAB = "keepalive-502"
DEMO_WHY = (
    "the quickest lab that shows the whole job: a failure reproduced (broken: 502s from "
    "a healthy api), its fix proven (fixed), and a retry that hides it (masked)"
)


def run_with_progress(lab: Lab, args: argparse.Namespace, quiet: bool = False) -> RunOutcome:
    variants = select_variants(lab, args.variant or ())  # unknown variant: fail before starting
    unjudged = shortened(variants, args.duration)

    def note_unjudged() -> None:
        err.print(f"{lab.name}: checks {unjudged}", highlight=False, markup=False)

    live = LiveProgress(lab)
    options = RunOptions(
        variants=args.variant or (),
        duration_s=args.duration,
        results_root=args.results_dir,
        topology=args.topology,
        locust_workers=getattr(args, "locust_workers", 0),
        progress=None if quiet else live.update,
        variant_done=None if quiet else live.done,
        live=_say_dashboard(lab) if getattr(args, "live", False) else None,
        ready=note_unjudged if unjudged and not quiet else None,
    )
    with live:
        return run_lab(lab, options)


def _say_dashboard(lab: Lab) -> Callable[[str, str], None]:
    def say(variant: str, url: str) -> None:
        err.print(f"live: {lab.name} / {variant}: {url}", highlight=False, markup=False)

    return say


def cmd_run(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    outcome = run_with_progress(lab, args, quiet=False)
    if args.json:
        print(json.dumps(outcome.to_dict()))
    else:
        out.print(terminal.numbers_table(outcome))
        print_checks(outcome)
        out.print(f"report: {outcome.results_dir / 'report.html'}", highlight=False)
    return 0 if outcome.passed else 1


def cmd_check(args: argparse.Namespace) -> int:
    if args.all and args.labs:
        raise LabError("give lab names or --all, not both")
    if not args.all and not args.labs:
        raise LabError("name at least one lab, or --all (see `lab list`)")
    labs = all_labs() if args.all else [get_lab(name) for name in args.labs]
    for lab in labs:  # a duration no check can be judged at: say so before any lab runs
        if unjudged := shortened(lab.variants, args.duration):
            raise LabError(
                f"{lab.name}: {unjudged}; `lab check` judges every check: drop --duration or "
                "give a longer one"
            )
    if args.junit:
        junit.ensure_writable(args.junit)
    documents: list[dict[str, object]] = []
    suites: list[junit.LabRun] = []
    passed = True
    for lab in labs:
        outcomes = []
        for number in range(1, (args.repeat or 1) + 1):
            stamp, started = time.strftime("%Y-%m-%dT%H:%M:%S"), time.monotonic()
            outcome = run_with_progress(lab, args, quiet=True)
            seconds = time.monotonic() - started
            outcomes.append(outcome)
            passed &= outcome.passed
            name = f"{lab.name} run {number}/{args.repeat}" if args.repeat else lab.name
            directory = str(outcome.results_dir)
            suites.append(junit.LabRun(lab.name, outcome.checks, seconds, directory, stamp, name))
            if not args.repeat:
                documents.append(outcome.to_dict())
            elif args.json:  # stdout is the one JSON document: progress goes to stderr
                verdict = "PASS" if outcome.passed else "FAIL"
                err.print(f"{name}: {verdict} ({seconds:.1f} s)", highlight=False, markup=False)
            if not args.json:
                for check in outcome.checks:  # --repeat: only what did not pass
                    if not args.repeat or check.verdict != "PASS":
                        print(check.line(lab.name))
                print(
                    f"{name}: {'PASS' if outcome.passed else 'FAIL'} "
                    f"({seconds:.1f} s, {outcome.results_dir})"
                )
                if args.timings and outcome.timings:
                    print(outcome.timings.line(name, lab.parallel_variants))
        if args.repeat:
            runs = [o.checks for o in outcomes]
            directories = [str(o.results_dir) for o in outcomes]
            documents.append(stability.lab_document(lab.name, runs, directories))
            passed &= bool(documents[-1]["passed"])
            if not args.json:
                for band in stability.summarize(runs):
                    print(band.line(lab.name))
    if args.junit:
        junit.write(args.junit, suites)
    if args.json:
        if args.repeat:
            document: object = {"passed": passed, "repeat": args.repeat, "labs": documents}
        else:
            single = len(documents) == 1
            document = documents[0] if single else {"passed": passed, "labs": documents}
        print(json.dumps(document))
    return 0 if passed else 1


def load_seconds(lab: Lab, duration: float | None) -> float:
    """Seconds of load a full run of the lab takes (its variants at once, or in turn)."""
    each = [duration or v.load.duration_s for v in lab.variants]
    return max(each) if lab.parallel_variants else sum(each)


def demo_plan(every: bool, duration: float | None) -> tuple[list[Lab], str]:
    """The labs `lab demo` runs, and the line that says which and why."""
    demo_labs = [lab for lab in all_labs() if lab.demo]
    if every:
        left_out = [lab.name for lab in all_labs() if not lab.demo]
        minutes = sum(load_seconds(lab, duration) for lab in demo_labs) / 60
        return demo_labs, (
            f"demo: every demo lab, one after another ({len(demo_labs)}, over {minutes:.0f} "
            f"min of load): {', '.join(lab.name for lab in demo_labs)}"
            + (f"; not {', '.join(left_out)} (run them with `lab run`)" if left_out else "")
        )
    lab = get_lab(DEMO_LAB)
    together = "side by side" if lab.parallel_variants else "one after another"
    load = load_seconds(lab, duration)
    return [lab], (
        f"demo: {lab.name}, one lab end to end: its {len(lab.variants)} variants {together}, "
        f"{load:.0f} s of load (about {load + 10:.0f} s in all). Why this one: {DEMO_WHY}. "
        f"`lab demo --all` runs all {len(demo_labs)} demo labs (minutes)."
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """One lab end to end (`--all`: every demo lab), a summary that fits any terminal,
    then the commands to try next."""
    args.variant = None
    labs, intro = demo_plan(args.all, args.duration)
    out.print(intro + "\n", highlight=False, markup=False, soft_wrap=False)
    outcomes = [run_with_progress(lab, args) for lab in labs]
    out.print(terminal.summary(outcomes))
    for outcome in outcomes:
        out.print(f"report: {outcome.results_dir / 'report.html'}", highlight=False)
    more = [] if args.all else [("lab demo --all", "every demo lab, one after another")]
    out.print("\n" + terminal.next_steps(labs[0], more), highlight=False, markup=False)
    return 0 if all(o.passed for o in outcomes) else 1
