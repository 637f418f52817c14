"""Hand-made results for judging a lab's checks without running it."""

from __future__ import annotations

from dataclasses import replace

from labs.engine.analysis.metrics import VariantResult, summarize


def empty_run(variant: str, numbers: object | None = None, **changes: object) -> VariantResult:
    """A run of `variant` with no requests, carrying a lab's own numbers (None: its
    derive produced none) and any other field `changes`."""
    result = replace(summarize(variant, []), **changes)
    return result if numbers is None else result.with_derived(numbers)
