"""A small, fixed run (a lab, two variants, a fault window, checks, a lab plot) for the
report tests, so they exercise every part of report.html without starting a topology."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from labs.engine.analysis import series as S
from labs.engine.analysis.metrics import Request, VariantResult, summarize
from labs.engine.model import verdicts
from labs.engine.model.checks import status_absent, status_at_least
from labs.engine.model.spec import Lab, LoadSpec, NginxSpec, Plot, ServiceSpec, Variant

GUIDE = """# Sample lab

**Question:** does the sample show up?

## Why it happens

The api answers `503` during the outage <script>alert("x")</script>.

| variant | outage |
|---|---|
| `broken` | 3 s |

[a link](javascript:alert(1)) and <http://127.0.0.1:8089>
"""


def sample_lab(tmp_path: Path, plots: tuple[Plot, ...] = ()) -> Lab:
    guide = tmp_path / "guide.md"
    guide.write_text(GUIDE)
    base = Variant(
        name="broken",
        summary="an outage from 4 s to 7 s & no retries",
        nginx=NginxSpec(),
        services=(ServiceSpec(),),
        load=LoadSpec("synchronized_bursts.py", users=4, spawn_rate=4, duration_s=12),
        twin="fixed",
    )
    fixed = Variant(
        "fixed", "retries with backoff", base.nginx, base.services, base.load, twin="broken"
    )
    return Lab(
        name="sample",
        title="Sample: an outage, and the fix",
        question="Does a 3 s outage reach the clients?",
        guide=guide,
        variants=(base, fixed),
        checks=(
            status_at_least("broken", 503, count=5),
            status_absent("fixed", 503, min_requests=10),
        ),
        key_metrics=("requests", "status.503", "p99_ms"),
        plots=plots,
    )


def sample_results() -> dict[str, VariantResult]:
    def run(name: str, errors: bool) -> VariantResult:
        requests = []
        for tick in range(120):  # 10 requests/s for 12 s
            t = tick / 10
            status = 503 if errors and 4.0 <= t < 7.0 else 200
            requests.append(Request(1000.0 + t, "GET /work", status, 5.0 + (t % 1) * 20))
        result = summarize(name, requests)
        result = replace(result, events=[
            {"t_s": 4.0, "what": "fault", "action": "settings", "service": "api",
             "replica": None, "settings": {"outage_s": 3}},
        ])  # fmt: skip
        result = replace(
            result,
            nginx_series={
                "t_s": [float(i) for i in range(12)],
                "retried": [0.0] * 12 if errors else [0, 0, 0, 0, 4, 5, 3, 0, 0, 0, 0, 0],
            },
        )
        return result

    return {"broken": run("broken", True), "fixed": run("fixed", False)}


def attempts_plot() -> Plot:
    """A lab's own plot: one series per variant, overlaid."""
    return Plot("Upstream attempts per second", "attempts/s", S.nginx_retries, "step")


def judge(lab: Lab, results: dict[str, VariantResult]) -> list[verdicts.CheckResult]:
    return verdicts.judge(lab, results)
