"""The load balancing lab, end to end: real nginx, 4 api replicas (one slow, then
killed, then started again, then for the hash variants taken out of the upstream),
Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labs.engine.analysis.metrics import read_requests
from labs.load_balancing.measure import RELOAD_SETTLE_S
from tests.conftest import passed_check

pytestmark = pytest.mark.lab

BALANCERS = ("round-robin", "least-conn", "p2c", "weighted", "hash")
VARIANTS = (*BALANCERS, "hash-plain", "no-health-check")
CHECKS = {
    "least_conn_beats_round_robin_with_a_slow_replica",
    "p2c_beats_round_robin_with_a_slow_replica",
    "least_conn_starves_the_slow_replica",
    *(f"{v.replace('-', '_')}_fails_over_a_dead_replica" for v in BALANCERS),
    "hash_consistent_moves_only_the_removed_replicas_keys",
}
REPLICAS = ["api-1", "api-2", "api-3", "api-4"]
PHASES = ["healthy", "slow", "dead", "back"]


def test_load_balancing_check_slow_dead_back_and_scale_in(lab_env, tmp_path: Path):
    document = passed_check("load-balancing", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS
    # every check could fail: re-judged on its twin's numbers, it does
    assert {c["name"]: c["fails_without_fix"] for c in document["checks"]} == dict.fromkeys(
        CHECKS, True
    )

    variants = document["variants"]
    assert set(variants) == set(VARIANTS)
    for name, variant in variants.items():
        extra = variant["extra"]
        scaled_in = name.startswith("hash")
        assert [p["name"] for p in extra["phases"]] == PHASES + ["removed"] * scaled_in, name
        assert extra["replicas"] == REPLICAS, name
        # every answer names its replica, and the engine counted them
        assert sum(variant["replicas"].values()) == variant["status"].get("200", 0), name
        healthy, dead = extra["by_phase"]["healthy"], extra["by_phase"]["dead"]
        assert dead["share"]["api-4"] == 0.0, name  # nobody answers for a dead replica
        assert extra["back_after_s"] is not None, name  # and it came back
        assert extra["by_phase"]["back"]["share"]["api-4"] > 0.0, name
        if scaled_in:  # taken out of the upstream, it gets nothing once the reload is done
            removed = next(p for p in extra["phases"] if p["name"] == "removed")
            after = variant["origin_s"] + removed["start_s"] + RELOAD_SETTLE_S
            requests = read_requests(Path(document["results_dir"]) / name / "requests.csv")
            assert not [r for r in requests if r.replica == "api-4" and r.start_s >= after]
        if name != "weighted":
            assert all(0.15 <= share <= 0.35 for share in healthy["share"].values()), name
    for name in ("hash", "hash-plain"):
        hashed = variants[name]["extra"]
        assert hashed["keys_single_replica_pct"] == 100.0, name  # key affinity while all up
        # marked down by nginx, a server stays in the hash: only its keys move, either way
        assert hashed["died_keys_moved_not_of_it"] == 0, name
    assert variants["hash"]["extra"]["removed_keys_moved_not_of_it"] == 0  # the ring holds
    assert variants["no-health-check"]["extra"]["dead_tries"] > 50  # never ejected

    run_dir = Path(document["results_dir"])
    for name in ("requests.csv", "nginx/access.log", "nginx/nginx.conf"):
        assert (run_dir / "round-robin" / name).is_file(), name
    assert "weight=1 " in (run_dir / "weighted" / "nginx" / "nginx.conf").read_text()
    assert len(list((run_dir / "plots").glob("*.png"))) >= 3
