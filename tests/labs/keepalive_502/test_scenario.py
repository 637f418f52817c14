"""keepalive-502's scenario (labs/keepalive_502/scenario.py) and its loads: every variant
runs the same bursts, the burst clock (loadtests/pacing.py), and the guide's paced users."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from labs.keepalive_502.scenario import USERS, VARIANTS
from loadtests.pacing import JOIN_WINDOW_S, POLL_S, BurstClock, swept_offset

ROOT = Path(__file__).resolve().parents[3]


def test_every_variant_runs_the_same_traffic_a_second_apart():
    assert [v.name for v in VARIANTS] == ["broken", "fixed", "masked", "short-pool"]
    for variant in VARIANTS:
        assert variant.load.env["LAB_IDLE_MS"] == "1000"
        assert (variant.load.users, variant.nginx.upstream.keepalive) == (USERS, USERS) == (32, 32)


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


def test_a_user_fires_once_a_burst_however_fast_its_answer():
    # The flake this guards against: a user whose answer came back inside the join
    # window fired again in the same burst, on the connection it had just freed, and
    # short-pool read 36 % reused instead of ~0.
    clock = BurstClock(first=100.0, gap_s=1.0, offset_low_s=-0.009, offset_high_s=-0.001)
    assert clock.wait_s(99.0, last=-1) == pytest.approx(1.0)
    assert clock.wait_s(100.001, last=-1) == 0.0
    fast, slow = clock.join(), clock.join()
    clock.done(now=100.002)  # fast's answer, inside the join window
    assert clock.wait_s(100.002, last=fast) == POLL_S  # not again in burst 0
    assert clock.wait_s(100.002, last=-1) == 0.0  # a user yet to fire still joins
    clock.done(now=100.004)  # slow's: burst 0 is over, burst 1 is scheduled
    assert (clock.index, slow) == (1, 0)
    assert clock.wait_s(100.004, last=fast) == pytest.approx(clock.fire_at - 100.004)


def test_a_user_woken_late_for_its_burst_joins_it_unless_it_is_over():
    clock = BurstClock(first=100.0, gap_s=1.0, offset_low_s=-0.009, offset_high_s=-0.001)
    late = 100.0 + JOIN_WINDOW_S + 0.010  # a stall delayed every user's wake-up
    clock.join()
    assert clock.wait_s(late, last=-1) == POLL_S  # it did not sleep for burst 0
    assert clock.wait_s(late, last=-1, woke_for=0) == 0.0
    clock.done(now=late)
    assert clock.wait_s(late, last=-1, woke_for=0) > 0.9  # burst 0 is over: the next


def test_the_paced_locustfile_of_the_guide_paces_users_independently():
    # Parsed, not imported: importing locust monkey-patches the interpreter with gevent.
    tree = ast.parse((ROOT / "loadtests/paced_users.py").read_text())
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
    guide = (ROOT / "labs/keepalive_502/guide.md").read_text()
    assert "-m locust -f loadtests/paced_users.py --host http://127.0.0.1:PORT" in guide
