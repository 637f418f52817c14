"""The keepalive lab's pieces without a run: the grade's load from the edited settings,
what it refuses, reading bursts.csv and /admin/stats, and what "the fix holds" means."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import Request, summarize
from labs.engine.errors import LabError
from labs.engine.exercises import exercise
from labs.keepalive_502 import lab as keepalive
from labs.keepalive_502.lab import LAB, grade_gaps
from loadtests.pacing import BurstClock, swept_offset


@pytest.mark.parametrize(
    "api_s, nginx_s, gaps",
    [
        # the api gives up first: just past its timeout it closes every pooled connection
        # (whoever closes first shows), and the straddling gap races it: 502s
        (1.0, 60.0, [1.0, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0]),
        (5.0, 60.0, [1.0, 5.1, 1.0, 1.0, 1.0, 1.0, 5.0]),
        (15.0, 60.0, [1.0, 15.1, 1.0, 1.0, 1.0, 1.0, 15.0]),
        # nginx gives up first, within reach: probed just past and around its timeout
        (3.0, 2.0, [1.0, 2.1, 1.0, 1.0, 1.0, 1.0, 2.0]),
        # ... under the traffic's gap (hint 3's old 900ms): the traffic finds no pool
        (1.0, 0.9, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9]),
        # nginx gives up first, beyond a run: the traffic alone (no race is possible)
        (75.0, 60.0, [1.0]),
        (16.0, 15.5, [1.0]),
    ],
)
def test_the_grade_drives_gaps_around_the_shorter_idle_timeout(api_s, nginx_s, gaps):
    assert grade_gaps(api_s, nginx_s) == gaps


@pytest.mark.parametrize("api_s, nginx_s", [(30.0, 60.0), (60.0, 60.0), (16.0, 20.0)])
def test_an_api_timeout_a_run_cannot_reach_while_nginx_holds_longer_is_refused(api_s, nginx_s):
    with pytest.raises(ValueError, match=r"^api.keepalive_timeout_s = \d+ cannot be graded"):
        grade_gaps(api_s, nginx_s)


def test_a_gap_never_goes_below_the_sweep():
    gaps = grade_gaps(0.001, 60.0)
    assert min(gaps) == 0.05 and min(gaps) + keepalive.OFFSET_MS[0] / 1000 > 0


def edit(workdir: Path, api: str, nginx: str) -> Path:
    text = keepalive.settings(LAB.variant("broken"))
    text = text.replace("keepalive_timeout_s = 1.0", f"keepalive_timeout_s = {api}")
    text = text.replace('keepalive_timeout = "60s"', f'keepalive_timeout = "{nginx}"')
    path = workdir / "settings.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "api, nginx, idle_ms",
    [
        ("5", "60s", "1000,5100,1000,1000,1000,1000,5000"),
        ("75", "60s", "1000"),
        ("1.0", "900ms", "1000,1000,1000,1000,1000,1000,900"),
        ("1.0", "0.9s", "1000"),  # not an nginx time: nginx rejects it, with its message
    ],
)
def test_the_edited_settings_set_the_grades_load(tmp_path, api, nginx, idle_ms):
    variant = exercise.load_edit(LAB, edit(tmp_path, api, nginx))
    assert variant.load.env["LAB_IDLE_MS"] == idle_ms
    assert variant.load.env["LAB_METHOD"] == "POST"
    assert variant.load.duration_s == LAB.variant("broken").load.duration_s


def test_an_ungradable_edit_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(LabError) as caught:
        exercise.load_edit(LAB, edit(tmp_path, "30", "60s"))
    message = str(caught.value)
    assert "\n" not in message and "api.keepalive_timeout_s = 30 cannot be graded" in message


def test_every_variant_runs_the_same_traffic_a_second_apart():
    for variant in LAB.variants:
        assert variant.load.env["LAB_IDLE_MS"] == "1000"
        assert (variant.load.users, variant.nginx.upstream.keepalive) == (32, 32)


BURSTS = """\
burst,gap_ms,offset_ms,fired_s,requests,status_502,no_response,reused
0,,,100.000000,32,0,0,0
1,1000,-4.1,101.000000,32,0,0,32
2,1100,-7.1,102.100000,32,0,0,0
3,1000,-2.2,103.100000,32,5,0,20
4,900,-5.2,104.000000,32,0,0,32
"""


def test_traffic_reuse_counts_the_bursts_after_the_traffics_gap(tmp_path):
    path = tmp_path / "bursts.csv"
    path.write_text(BURSTS)
    rows = keepalive.read_bursts(path)
    assert keepalive.traffic_reuse(rows) == (64, 52)  # bursts 1 and 3
    assert keepalive.read_bursts(tmp_path / "missing.csv") == []


def result_with(ok=300, bad=0, reused_pct=100.0, traffic=256, closed=0):
    requests = [Request(1000.0 + i * 0.01, "/work", 200, 5.0) for i in range(ok)]
    requests += [Request(1000.0 + (ok + i) * 0.01, "/work", 502, 5.0) for i in range(bad)]
    result = summarize("after", requests)
    result.extra = {"reused_pct": reused_pct, "traffic_requests": traffic,
                    "api_closed_first": closed}  # fmt: skip
    return result


def test_api_connections_sums_replicas_and_unknown_stays_unknown():
    result = result_with()
    result.services = {"api": [
        {"connections": {"requests": 10, "reused": 8, "opened": 2, "closed_first": 3}},
        {"connections": {"requests": 10, "reused": 6, "opened": 4, "closed_first": 1}},
    ]}  # fmt: skip
    assert keepalive.api_connections(result) == (20, 14, 4)
    result.services["api"][1]["connections"]["closed_first"] = None
    assert keepalive.api_connections(result) == (20, 14, None)


@pytest.mark.parametrize(
    "numbers, holds",
    [
        ({}, True),
        ({"bad": 1}, False),  # a 502
        ({"reused_pct": 79.0}, False),  # the pool does not serve the traffic
        ({"reused_pct": math.nan}, False),  # reuse not measured: not a pass
        ({"closed": 32}, False),  # the api gave up first (no race needed to see it)
        ({"closed": keepalive.CLOSED_FIRST_STRAY}, True),  # a stray or two
        ({"closed": None}, True),  # no /proc/net/tcp: the 502s and the reuse decide
        ({"ok": 150}, False),  # too few requests to mean anything
    ],
)
def test_the_fix_holds_only_with_no_502s_reuse_and_nginx_giving_up_first(numbers, holds):
    assert keepalive.holds(result_with(**numbers)) is holds


def test_measure_reads_like_a_grader():
    assert keepalive.measure(result_with(ok=290, bad=10, reused_pct=52.4, closed=301)) == (
        "10 of 300 requests were 502 (3.3 %), 52 % of the traffic rode a reused connection, "
        "the api closed 301 idle connections first"
    )


def test_burst_clock_takes_gaps_in_turn_and_reports_them():
    clock = BurstClock(first=100.0, gap_s=[1.0, 5.0], offset_low_s=-0.009, offset_high_s=-0.001)
    assert [clock.gap_before(k) for k in range(4)] == [None, 1.0, 5.0, 1.0]
    assert clock.offset(0) == 0.0 and clock.offset(3) == swept_offset(3, -0.009, -0.001)
    fired = []
    for _ in range(3):
        clock.join()
        clock.done(now=clock.fire_at + 0.002)
        fired.append(clock.fire_at)
    assert fired[1] - fired[0] == pytest.approx(0.002 + 5.0 + clock.offset(2))
    assert fired[2] - fired[1] == pytest.approx(0.002 + 1.0 + clock.offset(3))
    with pytest.raises(ValueError):
        BurstClock(first=0, gap_s=[], offset_low_s=-0.009, offset_high_s=-0.001)


def test_the_paced_locustfile_of_the_guide_paces_users_independently():
    # Parsed, not imported: importing locust monkey-patches the interpreter with gevent.
    import ast

    root = Path(__file__).resolve().parents[2]
    tree = ast.parse((root / "loadtests/paced_users.py").read_text())
    imports = {
        f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "loadtests.recorder" in imports  # every request recorded, like the others
    users = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id == "FastHttpUser" for base in node.bases)
    ]
    assert len(users) == 1
    waits = [
        statement.value
        for statement in users[0].body
        if isinstance(statement, ast.Assign)
        and [getattr(t, "id", None) for t in statement.targets] == ["wait_time"]
    ]
    assert len(waits) == 1 and isinstance(waits[0], ast.Call)
    assert getattr(waits[0].func, "id", None) == "between"
    assert [ast.literal_eval(arg) for arg in waits[0].args] == [0.9, 1.1]
    assert "self.client.post" in ast.unparse(users[0])  # POSTs like the lab
    guide = (root / "labs/keepalive_502/guide.md").read_text()
    assert "-m locust -f loadtests/paced_users.py --host http://127.0.0.1:PORT" in guide
