"""The catalog: every labs/<folder>/lab.py that defines `LAB`, found by scanning."""

from __future__ import annotations

import importlib
import pkgutil

import labs
from labs.engine.errors import LabError
from labs.engine.model.spec import Lab


def all_labs() -> list[Lab]:
    found = []
    for module in pkgutil.iter_modules(labs.__path__):
        if not module.ispkg or module.name == "engine":
            continue
        try:
            lab_module = importlib.import_module(f"labs.{module.name}.lab")
        except ModuleNotFoundError:
            continue
        lab = getattr(lab_module, "LAB", None)
        if isinstance(lab, Lab):
            found.append(lab)
    return sorted(found, key=lambda lab: lab.name)


def get_lab(name: str) -> Lab:
    for lab in all_labs():
        if lab.name == name:
            return lab
    known = ", ".join(lab.name for lab in all_labs()) or "none"
    raise LabError(f"unknown lab {name!r} (known: {known}; see `lab list`)")
