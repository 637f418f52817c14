"""`make stability` stores each lab's repeat run as it finishes, skips what is stored at
the same source, and renders stale or missing labs as such (bench/stability.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import stability
from bench.run import process_cpu_s
from labs.engine.reporting import stability_store
from labs.engine.runtime.processes import pid_alive


def document(lab: str, passed: int = 10) -> dict:
    check = {"name": "a", "runs": 10, "passed": passed, "min": 1, "median": 2, "max": 3}
    return {"lab": lab, "runs": 10, "passed": passed == 10, "checks": [check]}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(stability_store, "STORE", tmp_path)
    changed = {"older": ["labs/keepalive_502/spec.py"]}
    monkeypatch.setattr(stability, "changed_since", lambda commit, lab: changed.get(commit, []))
    return tmp_path


def stored(mode: str, lab: str, commit: str = "abc1234", passed: int = 10):
    return stability.Stored(
        mode, lab, 10, commit, "2026-12-06 15:00", 600.0, document(lab, passed)
    )  # fmt: skip


def test_stored_runs_round_trip_and_render_with_their_commit(store):
    stored("quiet", "keepalive-502").save()
    assert stability.Stored.load("quiet", "keepalive-502") == stored("quiet", "keepalive-502")
    stored("compose", "keepalive-502", passed=9).save()
    lines, complete = stability.render(10)
    assert "| lab / check | quiet | busy | compose |" in lines
    assert "| keepalive-502 / a | 10/10: 1 / 2 / 3 | - | **9/10**: 1 / 2 / 3 |" in lines
    assert (
        "- keepalive-502: quiet 10 runs at abc1234, 2026-12-06 15:00, 10 min; "
        "compose 10 runs at abc1234, 2026-12-06 15:00, 10 min"
    ) in lines
    assert "| retries | not measured yet | not measured yet | not measured yet |" in lines
    assert (
        "- **quiet**: Quiet machine (local topology): 1 of 13 labs measured, 1 at their "
        "current source"
    ) in lines
    assert not complete  # the other labs and modes are missing


def test_a_lab_whose_source_changed_is_marked_stale_and_not_complete(store):
    labs = [lab.name for lab in stability.all_labs()]
    for mode in stability.MODES:
        for lab in labs:
            stored(mode, lab).save()
    assert stability.render(10)[1]
    stored("busy", labs[0], commit="older").save()
    lines, complete = stability.render(10)
    assert not complete
    stale = "busy 10 runs at older, 2026-12-06 15:00, 10 min (STALE: 1 file(s) changed since"
    assert any(line.startswith(f"- {labs[0]}: ") and stale in line for line in lines), lines
    assert f"| {labs[0]} / a | 10/10: 1 / 2 / 3 | 10/10: 1 / 2 / 3 (stale) | " in "\n".join(lines)
    assert (
        "- **busy**: One core kept busy by a spinner at normal priority (local topology): "
        f"{len(labs)} of {len(labs)} labs measured, {len(labs) - 1} at their current source"
    ) in lines
    stored("busy", labs[0], passed=9).save()
    lines, complete = stability.render(10)
    assert not complete and f"| {labs[0]} / a | 10/10: 1 / 2 / 3 | **9/10**: 1 / 2 / 3 |" in (
        "\n".join(lines)
    )


def test_a_stored_lab_is_skipped_and_a_missing_one_is_measured(store, monkeypatch, tmp_path):
    stored("quiet", "keepalive-502").save()
    measured = []

    def measure(mode, lab, repeat):
        measured.append((mode, lab))
        return stored(mode, lab)

    monkeypatch.setattr(stability, "measure", measure)
    monkeypatch.setattr(stability, "uncommitted", lambda lab: [])
    out = tmp_path / "stability.md"
    argv = ["--modes", "quiet", "--labs", "keepalive-502", "retries", "--out", str(out)]
    assert stability.main(argv) == 1  # still incomplete: other labs, other modes
    assert measured == [("quiet", "retries")]
    assert stability.Stored.load("quiet", "retries") is not None
    assert "| retries / a | 10/10: 1 / 2 / 3 | - | - |" in out.read_text()


def test_a_measurement_says_how_long_the_last_record_took(store):
    assert stability.expected("compose", "keepalive-502", 10) == ""
    stored("quiet", "keepalive-502").save()  # 10 runs, 600 s
    assert stability.expected("compose", "keepalive-502", 5) == (
        ", ~5 min (10 runs took 10.0 min quiet at abc1234)"
    )
    stored("compose", "keepalive-502", commit="def5678").save()
    assert stability.expected("compose", "keepalive-502", 10) == (
        ", ~10 min (10 runs took 10.0 min at def5678)"
    )


@pytest.mark.parametrize("argv", [["--labs", "nope"], ["--repeat", "0"], ["--modes", "loud"]])
def test_bad_input_is_a_usage_error(argv, store, capsys):
    with pytest.raises(SystemExit) as exit_:
        stability.main(argv)
    assert exit_.value.code == 2


def test_staleness_counts_the_experiment_not_the_engine_or_the_guide(tmp_path, monkeypatch):
    monkeypatch.setattr(stability_store, "REPO_ROOT", tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]

    def commit(*files: str) -> str:
        for name in files:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(f"{name} {len(list(tmp_path.rglob('*')))}")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "c"], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout

    subprocess.run([*git, "init", "-q"], check=True)
    first = commit("labs/keepalive_502/spec.py", "labs/engine/runner.py").strip()
    commit("labs/engine/runner.py", "labs/keepalive_502/guide.md", "labs/retries/spec.py")
    assert stability.changed_since(first, "keepalive-502") == []
    commit("services/api/app.py")
    assert stability.changed_since(first, "keepalive-502") == ["services/api/app.py"]
    assert stability.changed_since(first, "retries") == [
        "labs/retries/spec.py",
        "services/api/app.py",
    ]


def test_a_lab_goes_stale_with_the_loadtests_files_it_runs_and_no_others(tmp_path, monkeypatch):
    monkeypatch.setattr(stability_store, "REPO_ROOT", tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    sources = {  # keepalive-502 runs synchronized_bursts.py, retries steady_users.py
        "synchronized_bursts.py": "from loadtests.pacing import BurstClock\nimport gevent\n",
        "steady_users.py": "import loadtests.recorder\n",
        "pacing.py": "import math\n",
        "recorder.py": "from loadtests import helpers\n",
        "helpers.py": "",
    }

    def commit(name: str, text: str) -> str:
        (tmp_path / "loadtests").mkdir(exist_ok=True)
        (tmp_path / "loadtests" / name).write_text(text)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", name], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout

    subprocess.run([*git, "init", "-q"], check=True)
    for name, text in sources.items():
        first = commit(name, text).strip()
    commit("pacing.py", "import math  # changed\n")
    assert stability.changed_since(first, "keepalive-502") == ["loadtests/pacing.py"]
    assert stability.changed_since(first, "retries") == []
    second = commit("helpers.py", "# imported through recorder.py\n").strip()
    assert stability.changed_since(first, "keepalive-502") == ["loadtests/pacing.py"]
    assert stability.changed_since(first, "retries") == ["loadtests/helpers.py"]
    commit("open_loop.py", "")  # no lab here runs it
    assert stability.changed_since(second, "keepalive-502") == []
    assert stability.changed_since(second, "retries") == []


def test_lab_checks_progress_is_passed_on_and_its_stdout_kept(capsys):
    script = "import sys; print('{}'); print('keepalive-502 run 1/2: PASS', file=sys.stderr)"
    stdout, tail = stability.run_forwarding_signals([sys.executable, "-c", script])
    assert stdout == "{}\n" and tail == "keepalive-502 run 1/2: PASS\n"
    assert "  keepalive-502 run 1/2: PASS" in capsys.readouterr().err


def test_busy_mode_spins_one_core_at_the_labs_priority_and_stops():
    with stability.busy_core(True) as pid:
        time.sleep(0.5)
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0)
        cpu_s = process_cpu_s(pid)
        assert cpu_s >= 0.2, f"spun {cpu_s:.2f} s of CPU in 0.5 s"
    assert not pid_alive(pid)
    with stability.busy_core(False) as nothing:
        assert nothing is None
