"""A lab's own report tables (Lab.tables): in report.md and report.html, built from the
run's results; a failing builder costs only its own table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from labs.engine.model.spec import Table
from labs.engine.reporting import report, tables
from tests.report_sample import judge, sample_lab, sample_results


def requests_table() -> Table:
    return Table(
        "Requests by variant",
        ("variant", "requests"),
        lambda results: [(name, str(r.requests)) for name, r in results.items()],
        note="one row per variant that ran",
    )


def broken_table() -> Table:
    def boom(_results):
        raise KeyError("no such variant")

    return Table("A table that fails", ("a",), boom)


def test_tables_are_written_to_report_md_and_html(tmp_path: Path) -> None:
    lab = replace(sample_lab(tmp_path), tables=(requests_table(), broken_table()))
    results = sample_results()
    checks = judge(lab, results)
    out = tmp_path / "run"
    out.mkdir()
    report.write(report.results_document(lab, results, checks, out), lab, out, results, checks)

    text = (out / "report.md").read_text()
    assert "## Requests by variant\n\n| variant | requests |\n|---|---|\n" in text
    for name, result in results.items():
        assert f"| {name} | {result.requests} |" in text
    assert "one row per variant that ran" in text
    assert "## A table that fails\n\nCould not be built: KeyError: 'no such variant'" in text
    page = (out / "report.html").read_text()
    assert "<h2>Requests by variant</h2>" in page
    assert f"<td>{next(iter(results))}</td>" in page
    assert "Could not be built: KeyError" in page


def test_a_lab_without_tables_renders_none(tmp_path: Path) -> None:
    assert tables.render_all(sample_lab(tmp_path), sample_results()) == []
    assert tables.markdown([]) == ""
