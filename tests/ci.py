"""Whether the tests run in CI: there a skipped test proves nothing, so tests that would
skip for want of something (a Docker engine) fail instead."""

from __future__ import annotations

import os

FALSE = frozenset({"", "0", "false", "no", "off", "n", "f"})


def ci_enabled(value: str | None) -> bool:
    """A CI variable's value as a flag: any value but an empty or false one ("0", "false",
    "no", "off", any case) is true, so CI=1, CI=true, CI=yes and CI=True all count; a CI
    system that sets an unusual value makes the tests strict rather than lenient."""
    return value is not None and value.strip().lower() not in FALSE


def in_ci() -> bool:
    return ci_enabled(os.environ.get("CI"))
