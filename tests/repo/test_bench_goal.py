"""`make bench` flags a ratio that misses its goal, in the table itself."""

from pathlib import Path

from bench.run import goal, overhead_rows
from labs.engine.runtime.timings import RunTimings, load_ran


def test_goal_says_met_or_flags_the_miss():
    assert goal(0.92, at_least=0.9) == "goal >= 0.9: met"
    assert goal(0.87, at_least=0.9) == "BELOW GOAL 0.9"
    assert goal(0.9, at_most=2) == "goal <= 2: met"
    assert goal(2.5, at_most=2) == "ABOVE GOAL 2"


def test_stability_cell_gives_the_pass_rate_and_the_band():
    from bench.stability import cell

    assert cell({"runs": 10, "passed": 10, "min": 12, "median": 30.5, "max": 41}) == (
        "10/10: 12 / 30.5 / 41"
    )
    assert cell({"runs": 10, "passed": 9, "min": None, "median": None, "max": None}) == "**9/10**"
    assert cell({"runs": 10, "passed": 10, "min": 1, "median": 1, "max": 1}, stale=True) == (
        "10/10: 1 / 1 / 1 (stale)"
    )
    assert cell(None) == "-"


def test_check_overhead_says_where_the_time_goes_overall_and_per_lab(tmp_path: Path):
    phases = {"start": 1.0, "spinup": 0.5, "load": 19.0, "exit": 1.0, "stop": 0.3}
    variants = {v: dict(phases) for v in ("a", "b")}
    # circuit-breaker runs its variants in turn (20 s planned each: 40 s of load);
    # keepalive-502 runs them at once, 15 s planned: the 5 s past it count as exit
    for lab, planned in (("circuit-breaker", 20), ("keepalive-502", 15)):
        parallel = lab == "keepalive-502"
        load = load_ran({"a": planned, "b": planned}, variants, parallel)
        run = RunTimings(50.0, 0.1, 2.0, load, variants)
        (tmp_path / lab / "20261206-1200").mkdir(parents=True)
        run.write(tmp_path / lab / "20261206-1200" / "timings.json")
    total, ratio, rest, *labs = overhead_rows(110.0, True, tmp_path)
    assert total.value == "110" and total.note == "all passed"
    assert ratio.value == "2.00" and "ABOVE GOAL 1.05; 55 s of load in 2 runs" in ratio.note
    assert rest.value == "55.0"
    ranked = "between runs 10.0, exit 5.0, report 4.0, start 3.0, spinup 1.5, stop 0.9"
    assert rest.note.startswith(ranked)
    assert [(row.measure, row.value) for row in labs] == [
        ("`lab check circuit-breaker` wall / seconds of load", "1.25"),
        ("`lab check keepalive-502` wall / seconds of load", "3.33"),
    ]
    assert labs[0].note.startswith("50.0 s for 40.0 s: start 2.0, spinup 1.0, load 38.0")
    assert labs[1].note.startswith("50.0 s for 15.0 s: start 1.0, spinup 0.5, load 19.0")


def test_bands_print_without_exponents():
    from labs.engine.reporting.stability import fmt

    assert [fmt(v) for v in (None, 0, 0.00108, 5.6, 64.33, 713.2, 2340.4, 12.0)] == [
        "n/a", "0", "0.00108", "5.6", "64.3", "713", "2340", "12",
    ]  # fmt: skip


def test_policy_overhead_is_the_median_of_paired_ratios_with_their_range():
    from bench.run import paired

    spread = paired([90, 100, 120], [100, 100, 100])
    assert (spread.median, spread.low, spread.high) == (1.0, 0.9, 1.2)
    assert str(spread) == "1.00 (0.90-1.20)"


def test_process_cpu_grows_with_the_work_a_process_does():
    import os
    import time

    from bench.run import process_cpu_s

    before = process_cpu_s(os.getpid())
    until = time.process_time() + 0.2
    while time.process_time() < until:
        pass
    assert process_cpu_s(os.getpid()) - before >= 0.15
