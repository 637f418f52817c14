"""The README lists every lab of the catalog, with its variants, and every exercise."""

from __future__ import annotations

from labs.engine.model.catalog import all_labs
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README's text under `## title`, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the Markdown tables in `text`."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [row for row in rows if row[0] != "lab"]  # the header row


def lab_name(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), f"lab names are in backticks: {cell}"
    return cell.strip("`")


def test_labs_table_lists_every_lab_with_its_variants():
    rows = table_rows(section("The labs"))
    listed = {lab_name(row[0]): [v.strip() for v in row[-1].split(",")] for row in rows}
    assert len(listed) == len(rows), "a lab is listed twice"
    catalog = {lab.name: [v.name for v in lab.variants] for lab in all_labs()}
    assert sorted(listed) == sorted(catalog), "README's lab table vs `lab list`"
    for name, variants in catalog.items():
        assert listed[name] == variants, f"{name}: README lists {listed[name]}"


def test_exercise_list_names_every_lab_with_an_exercise():
    rows = table_rows(section("Fix it yourself: exercises"))
    listed = [lab_name(row[0]) for row in rows]
    assert all(len(row) == 2 and row[1] for row in rows), "each says what you edit"
    assert sorted(listed) == sorted(lab.name for lab in all_labs() if lab.exercise)
