"""Typed reads of a learner's exercise settings (parsed TOML), with one-line errors.

An exercise's `apply` hook reads the values it needs through these; a wrong type or
an out-of-range value raises ValueError naming the key as the file spells it
("client.attempts must be a whole number from 1 to 20"), which `lab grade` prints
as is. TOML booleans are not numbers here, though Python's bool is an int.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def table(data: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
    """The table at a dotted path ("nginx.upstream"); KeyError names a missing one."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"[{dotted}] is missing")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ValueError(f"{dotted} must be a table ([{dotted}])")
    return node


def _value(data: Mapping[str, Any], key: str) -> Any:
    where, _, name = key.rpartition(".")
    holder = table(data, where) if where else data
    if name not in holder:
        raise KeyError(f"{key} is missing")
    return holder[name]


def whole(data: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = _value(data, key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}")
    return value


def number(data: Mapping[str, Any], key: str, low: float, high: float, unit: str = "") -> float:
    """low < value <= high when low is 0 (a duration or a rate must be positive), else
    low <= value <= high."""
    value = _value(data, key)
    inside = isinstance(value, int | float) and not isinstance(value, bool)
    inside = inside and (low < value if low == 0 else low <= value) and value <= high
    if not inside:
        bound = f"> 0 and <= {high:g}" if low == 0 else f"from {low:g} to {high:g}"
        raise ValueError(f"{key} must be a number{f' of {unit}' if unit else ''}, {bound}")
    return float(value)


def boolean(data: Mapping[str, Any], key: str) -> bool:
    value = _value(data, key)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def choice(data: Mapping[str, Any], key: str, options: Collection[str]) -> str:
    value = _value(data, key)
    if value not in options:
        shown = ", ".join(f'"{o}"' for o in options)
        raise ValueError(f"{key} must be one of {shown}")
    return str(value)


def wholes(data: Mapping[str, Any], key: str, low: int, high: int) -> tuple[int, ...]:
    """A list of whole numbers, each from low to high."""
    value = _value(data, key)
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list of whole numbers")
    if any(isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high for v in value):
        raise ValueError(f"each of {key} must be a whole number from {low} to {high}")
    return tuple(value)
