"""The rate-limit lab, end to end: real nginx, 3 api replicas, real Redis, Locust (-m lab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import passed_check

pytestmark = pytest.mark.lab

LIMITED = ("nginx", "nginx-burst", "per-instance", "redis", "redis-down")


def test_rate_limit_check_passes_and_shows_each_limiter(lab_env, tmp_path: Path):
    document = passed_check("rate-limit", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == {
        "nginx_holds_the_limit",
        "nginx-burst_accepts_the_burst_at_once",
        "per-instance_lets_through_2.5x_the_limit",
        "redis_holds_the_limit",
        "redis-down_fails_open",
        "every_429_carries_retry_after",
        *(f"{v}_quiet_tenant_gets_through" for v in LIMITED),
    }

    variants = document["variants"]
    assert variants["none"]["status"].get("429", 0) == 0, "no limiter, no 429"
    for name in LIMITED:
        assert variants[name]["status"].get("429", 0) > 100, name
        assert variants[name]["extra"]["tenants"]["quiet"]["limited"] == 0, name
    # One limit for every tenant: the noisy one uses it up, the quiet one gets 429s.
    assert variants["global"]["extra"]["tenants"]["quiet"]["limited"] > 10
    proofs = {c["name"]: c["fails_without_fix"] for c in document["checks"]}
    assert proofs == {
        **dict.fromkeys(proofs, True),
        "every_429_carries_retry_after": "not_applicable",
    }
    events = variants["redis-down"]["events"]
    assert [(e["action"], e["service"], e["processes"]) for e in events] == [
        ("stop", "redis", ["redis"])
    ]
    run_dir = Path(document["results_dir"])
    for name in ("requests.csv", "rate_limit_headers.json", "nginx/nginx.conf", "logs/redis.log"):
        assert (run_dir / "redis-down" / name).is_file(), name
    assert "limit_req_zone" in (run_dir / "nginx" / "nginx" / "nginx.conf").read_text()
