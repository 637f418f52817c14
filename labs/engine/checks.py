"""Check builders shared by labs. Each detail says what was expected and what was
measured, in numbers, so a failing check reads like a grader's note."""

from __future__ import annotations

from collections.abc import Mapping

from labs.engine.metrics import VariantResult
from labs.engine.spec import Check


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def status_at_least(variant: str, status: int, count: int, share: float = 0.0) -> Check:
    """`variant` reproduces the failure: >= count responses of `status` and >= share of all."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        n = r.count(status)
        passed = n >= count and r.share(status) >= share
        wanted = f">= {count}" + (f" and >= {share * 100:g} %" if share else "")
        return (
            passed,
            f"{variant}: {n} of {r.requests} were {status} ({_pct(n, r.requests)}), "
            f"expected {wanted}",
        )

    return Check(f"{variant}_reproduces_{status}", evaluate, (variant,))


def status_absent(variant: str, status: int, min_requests: int) -> Check:
    """`variant` shows none of `status`, over enough requests for that to mean something."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        n = r.count(status)
        passed = n == 0 and r.requests >= min_requests
        return passed, (
            f"{variant}: {n} of {r.requests} were {status} ({_pct(n, r.requests)}), "
            f"expected 0 over >= {min_requests} requests"
        )

    return Check(f"{variant}_has_no_{status}", evaluate, (variant,))


def nginx_errors_at_least(variant: str, kinds: tuple[str, ...], count: int, label: str) -> Check:
    """nginx's error log for `variant` holds >= count entries of the given kinds."""

    def evaluate(results: Mapping[str, VariantResult]) -> tuple[bool, str]:
        r = results[variant]
        seen = {kind: r.nginx_errors.get(kind, 0) for kind in kinds}
        total = sum(seen.values())
        listed = ", ".join(f"{kind} {n}" for kind, n in seen.items())
        return (
            total >= count,
            f"{variant}: nginx error log has {total} ({listed}), expected >= {count}",
        )

    return Check(f"{variant}_error_log_shows_{label}", evaluate, (variant,))
