"""The load balancing lab, end to end: real nginx, 4 api replicas (one slow, then
killed, then started again), Locust (pytest -m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab

VARIANTS = ("round-robin", "least-conn", "p2c", "weighted", "hash")
CHECKS = {
    "least_conn_beats_round_robin_with_a_slow_replica",
    "p2c_beats_round_robin_with_a_slow_replica",
    "least_conn_starves_the_slow_replica",
    *(f"{v.replace('-', '_')}_fails_over_a_dead_replica" for v in VARIANTS),
    "hash_consistent_moves_only_the_dead_replicas_keys",
}
REPLICAS = ["api-1", "api-2", "api-3", "api-4"]


def test_load_balancing_check_slow_dead_and_back(lab_env, tmp_path: Path):
    document = passed_check("load-balancing", lab_env, tmp_path, timeout=180)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert set(variants) == set(VARIANTS)
    for name, variant in variants.items():
        extra = variant["extra"]
        assert [p["name"] for p in extra["phases"]] == ["healthy", "slow", "dead", "back"], name
        assert extra["replicas"] == REPLICAS, name
        # every answer names its replica, and the engine counted them
        assert sum(variant["replicas"].values()) == variant["status"].get("200", 0), name
        healthy, dead = extra["by_phase"]["healthy"], extra["by_phase"]["dead"]
        assert dead["share"]["api-4"] == 0.0, name  # nobody answers for a dead replica
        assert extra["back_after_s"] is not None, name  # and it came back
        if name != "weighted":
            assert all(0.15 <= share <= 0.35 for share in healthy["share"].values()), name
    hashed = variants["hash"]["extra"]
    assert hashed["keys_single_replica_pct"] == 100.0  # key affinity while all are up
    assert hashed["keys_moved_not_of_dead"] == 0  # only the dead replica's keys moved

    run_dir = Path(document["results_dir"])
    for name in ("requests.csv", "nginx/access.log", "nginx/nginx.conf"):
        assert (run_dir / "round-robin" / name).is_file(), name
    assert "weight=1 " in (run_dir / "weighted" / "nginx" / "nginx.conf").read_text()
    assert len(list((run_dir / "plots").glob("*.png"))) >= 3
