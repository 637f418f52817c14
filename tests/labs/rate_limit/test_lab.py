"""The rate-limit lab (labs/rate_limit/lab.py): its checks judged on synthetic numbers
(fast), and the lab end to end: real nginx, 3 api replicas, real Redis, Locust (-m lab)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest

from labs.engine.analysis.metrics import VariantResult
from labs.engine.model.verdicts import judge
from labs.rate_limit.lab import LAB, accepted_per_second
from labs.rate_limit.measure import RateLimitNumbers, TenantNumbers, Tenants
from labs.rate_limit.scenario import LIMITED
from tests.conftest import passed_check
from tests.labs.results import empty_run

CHECKS = {
    "nginx_holds_the_limit",
    "nginx-burst_accepts_the_burst_at_once",
    "per-instance_lets_through_2.5x_the_limit",
    "redis_holds_the_limit",
    "redis-down_fails_open",
    "every_429_carries_retry_after",
    *(f"{v}_quiet_tenant_gets_through" for v in LIMITED),
}
QUIET = TenantNumbers(requests=95, accepted=95, success_pct=100.0, p99_ms=2.1)
HEADERS = {"noisy": {"429": 1500, "retry_after": 1500, "problem_json": 1500}}


def numbers(
    accepted_rps: float,
    first_window: int = 6,
    quiet: TenantNumbers = QUIET,
    fault: tuple[float, float, float] | None = None,
) -> RateLimitNumbers:
    noisy = TenantNumbers(requests=1800, accepted=int(accepted_rps * 12), offered_rps=150.0,
                          accepted_rps=accepted_rps, accepted_first_window=first_window,
                          accepted_per_s=(first_window, 10, 10))  # fmt: skip
    at, before, after = fault or (None, None, None)
    return RateLimitNumbers(
        limit_rps=10, noisy_offered_rps=150.0, noisy_accepted_rps=accepted_rps,
        accepted_over_limit=round(accepted_rps / 10, 3), quiet_success_pct=quiet.success_pct,
        quiet_p99_ms=quiet.p99_ms, tenants=Tenants(noisy, quiet),
        headers_of_429={} if accepted_rps > 100 else HEADERS, fault_at_s=at,
        noisy_accepted_rps_before=before, noisy_accepted_rps_after=after,
    )  # fmt: skip


def measured(**changes: RateLimitNumbers) -> dict[str, VariantResult]:
    """A run like the ones measured here."""
    starved = TenantNumbers(requests=40, accepted=12, limited=28, success_pct=30.0, p99_ms=1.5)
    runs = {
        "none": numbers(149.0),
        "nginx": numbers(10.1),
        "nginx-burst": numbers(10.2, first_window=26),
        "per-instance": numbers(29.4, first_window=30),
        "redis": numbers(10.3, first_window=11),
        "redis-down": numbers(72.0, first_window=11, fault=(5.1, 10.2, 148.0)),
        "global": numbers(9.6, quiet=starved),
        **changes,
    }
    return {name: empty_run(name, n) for name, n in runs.items()}


def test_checks_pass_and_each_fails_on_its_twins_numbers():
    checks = {c.name: c for c in judge(LAB, measured())}
    assert set(checks) == CHECKS
    assert all(c.passed for c in checks.values()), checks
    proofs = {name: c.fails_without_fix for name, c in checks.items()}
    assert proofs == {
        **dict.fromkeys(CHECKS, True),
        "every_429_carries_retry_after": "not_applicable",
    }
    assert checks["nginx_holds_the_limit"].detail == (
        "noisy tenant's accepted/s in multiples of the 10/s limit: nginx 1.01, "
        "expected 0.85 .. 1.15"
    )
    assert checks["per-instance_lets_through_2.5x_the_limit"].value == pytest.approx(2.94)
    assert checks["nginx-burst_accepts_the_burst_at_once"].value == 26
    assert checks["redis-down_fails_open"].value == pytest.approx(14.8)
    assert "noisy accepted 10.2/s before Redis stopped at 5.1 s, 148.0/s after" in (
        checks["redis-down_fails_open"].detail
    )
    assert checks["redis_quiet_tenant_gets_through"].value == 100.0
    assert checks["every_429_carries_retry_after"].value == 100.0
    assert checks["every_429_carries_retry_after"].detail.startswith(
        "9000 of 9000 429s carried Retry-After and 9000 were problem+json (nginx 1500/1500, "
    )


def test_failures_are_judged_from_the_numbers():
    quiet_refused = replace(QUIET, accepted=93, limited=2, success_pct=97.9)
    no_problem_json = {"noisy": {"429": 1500, "retry_after": 1500, "problem_json": 1499}}
    checks = {
        c.name: c
        for c in judge(
            LAB,
            measured(
                nginx=numbers(11.6),
                redis=numbers(10.0, quiet=quiet_refused),
                **{"redis-down": numbers(50.0, fault=(5.1, 12.0, 148.0))},
                **{
                    "nginx-burst": replace(
                        numbers(10.2, first_window=19), headers_of_429=no_problem_json
                    )
                },
            ),
        )
    }
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {
        "nginx_holds_the_limit",
        "nginx-burst_accepts_the_burst_at_once",
        "redis_quiet_tenant_gets_through",
        "redis-down_fails_open",
        "every_429_carries_retry_after",
    }
    no_fault = {"redis-down": numbers(10.0)}
    fails_open = {c.name: c for c in judge(LAB, measured(**no_fault))}["redis-down_fails_open"]
    assert not fails_open.passed and "no stop fault was applied" in fails_open.detail


def test_the_plot_draws_each_tenants_accepted_rate():
    series = accepted_per_second(measured()["nginx"])
    assert series == {"noisy accepted/s": ((0, 1, 2), (6, 10, 10)), "quiet accepted/s": ((), ())}


@pytest.mark.lab
def test_rate_limit_check_passes_and_shows_each_limiter(lab_env, tmp_path: Path):
    document = passed_check("rate-limit", lab_env, tmp_path, timeout=240)
    assert {c["name"] for c in document["checks"]} == CHECKS

    variants = document["variants"]
    assert variants["none"]["status"].get("429", 0) == 0, "no limiter, no 429"
    for name in LIMITED:
        assert variants[name]["status"].get("429", 0) > 100, name
        assert variants[name]["extra"]["tenants"]["quiet"]["limited"] == 0, name
    for name, variant in variants.items():
        assert list(variant["extra"]) == list(asdict(numbers(10.0))), name  # results.json's keys
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
    assert variants["redis-down"]["extra"]["fault_at_s"] > 0
    assert variants["redis"]["extra"]["fault_at_s"] is None
    run_dir = Path(document["results_dir"])
    for name in ("requests.csv", "rate_limit_headers.json", "nginx/nginx.conf", "logs/redis.log"):
        assert (run_dir / "redis-down" / name).is_file(), name
    assert "limit_req_zone" in (run_dir / "nginx" / "nginx" / "nginx.conf").read_text()
