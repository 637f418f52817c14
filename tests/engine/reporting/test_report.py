"""report.write: results.json, report.md, the plots and a self-contained report.html;
`lab report`; the live progress line."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from labs.engine import cli
from labs.engine.cli.output import progress_text
from labs.engine.load.driver import LoadFiles, Progress, read_progress
from labs.engine.model.spec import Plot
from labs.engine.reporting import html, plots, report
from tests.report_sample import attempts_plot, judge, sample_lab, sample_results


def broken_plot() -> Plot:
    def boom(_result):
        raise KeyError("no such series")

    return Plot("A lab plot that fails", "things", boom)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, str]:
    lab = sample_lab(tmp_path, plots=(attempts_plot(), broken_plot()))
    results = sample_results()
    checks = judge(lab, results)
    out = tmp_path / "run"
    out.mkdir()
    document = report.results_document(lab, results, checks, out)
    report.write(document, lab, out, results, checks)
    return out, (out / "report.html").read_text()


def test_every_file_is_written_and_no_temporary_file_is_left(written):
    out, _ = written
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "results.json" in names and "report.md" in names and "report.html" in names
    pngs = [n for n in names if n.startswith("plots/")]
    # class, errors by code, nginx retries, p99, the lab's plot (the failing one has no file)
    assert len(pngs) == 5
    assert not [n for n in names if n.endswith(".tmp") or "/." in n or n.startswith(".")]
    assert "raw_requests" not in json.loads((out / "results.json").read_text())["variants"]["fixed"]


def test_report_md_links_the_plots(written):
    out, _ = written
    text = (out / "report.md").read_text()
    links = re.findall(r"!\[[^]]+\]\((plots/[^)]+\.png)\)", text)
    assert len(links) == 5 and all((out / link).is_file() for link in links)


def test_html_has_question_table_verdicts_plots_and_guide(written):
    _, page = written
    assert "Does a 3 s outage reach the clients?" in page
    assert "ALL CHECKS PASSED" in page
    assert page.count('class="verdict pass"') == 3  # banner + two checks
    assert "broken_reproduces_503" in page and "fixed_has_no_503" in page
    # the variants' table: one row each, with the lab's key numbers and escaped summaries
    rows = re.findall(r"<tr><td><b>(\w+)</b></td><td>([^<]*)</td>", page)
    assert rows == [
        ("broken", "an outage from 4 s to 7 s &amp; no retries"),
        ("fixed", "retries with backoff"),
    ]
    assert ">503</th>" in page
    # every plot is embedded; the failing lab plot is named with its error
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)">', page)
    assert [alt for _, alt in images] == [
        "Requests per second by status class",
        "Errors per second by status code",
        "nginx: requests retried upstream (access log)",
        "p99 latency seen by the clients",
        "Upstream attempts per second",
    ]
    for data, _ in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert "A lab plot that fails: could not be drawn (KeyError: &#39;no such series&#39;)" in page
    # the guide, rendered; its raw HTML shown as text, its javascript: link not a link
    assert "<h2>Why it happens</h2>" in page and "<td><code>broken</code></td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert '<a href="http://127.0.0.1:8089">' in page


def test_html_says_when_a_check_failed(tmp_path):
    lab = sample_lab(tmp_path)
    results = sample_results()
    results["fixed"] = results["broken"]  # the fix "removed": fixed now has 503s
    checks = judge(lab, results)
    page = html.render(lab, results, checks, [], str(tmp_path), "now")
    assert "A CHECK FAILED" in page and 'class="verdict fail"' in page


def png_pixels(png: bytes) -> np.ndarray:
    return (imread(io.BytesIO(png), format="png")[:, :, :3] * 255).round()


def shaded_pixels(png: bytes) -> int:
    """Pixels of the fault colour at 50 % over white (the shading, not a line)."""
    color = np.array([int(plots.FAULT_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    blended = (color + 255) / 2
    return int((np.abs(png_pixels(png) - blended).max(axis=2) <= 3).sum())


def test_fault_windows_are_shaded_only_when_asked(tmp_path):
    results = sample_results()
    shaded = plots.render(Plot("p", "requests/s", lambda r: {"x": ([0, 1], [1, 2])}), results)
    plain = plots.render(
        Plot("p", "requests/s", lambda r: {"x": ([0, 1], [1, 2])}, shade_faults=False), results
    )
    assert shaded_pixels(shaded) > 5000
    assert shaded_pixels(plain) == 0


def test_layout_overlays_single_series_and_puts_several_side_by_side():
    results = sample_results()

    def width(png: bytes) -> int:
        return png_pixels(png).shape[1]

    def panels(count: int) -> int:
        return round(count * plots.PANEL_WIDTH_IN * plots.DPI)

    p99 = Plot("p99", "ms", lambda r: {"p99": ([0, 1], [3, 4])})
    classes = Plot("c", "r/s", lambda r: {"a": ([0], [1]), "b": ([0], [2])})
    assert width(plots.render(p99, results)) == panels(2)  # one panel, double width
    assert width(plots.render(classes, results)) == panels(2)  # one panel per variant
    assert width(plots.render(p99, results, "side")) == panels(2)
    three = {**results, "masked": results["fixed"]}
    assert width(plots.render(p99, three)) == panels(2)
    assert width(plots.render(classes, three)) == panels(3)
    # seven variants (the retries lab): rows of three, not one very wide strip
    seven = {f"v{i}": results["fixed"] for i in range(7)}
    pixels = png_pixels(plots.render(classes, seven))
    assert pixels.shape[1] == panels(3)
    expected_height = (plots.HEIGHT_IN + 2 * plots.ROW_HEIGHT_IN) * plots.DPI
    assert pixels.shape[0] == round(expected_height)


def test_default_plots_leave_out_what_has_nothing_to_show():
    results = sample_results()
    titles = [plot.title for plot, _ in plots.default_plots(results)]
    assert "Errors per second by status code" in titles
    assert not any("error-log" in t or "/metrics" in t for t in titles)
    calm = {"fixed": results["fixed"]}
    calm["fixed"] = replace(calm["fixed"], nginx_series={})
    titles = [plot.title for plot, _ in plots.default_plots(calm)]
    assert titles == ["Requests per second by status class", "p99 latency seen by the clients"]


def make_run(root: Path, lab: str, stamp: str, passed: bool, age_s: float, html: bool = True):
    directory = root / lab / stamp
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(
        json.dumps({"passed": passed, "variants": {"broken": {}, "fixed": {}}})
    )
    (directory / ("report.html" if html else "report.md")).write_text("x")
    when = time.time() - age_s
    os.utime(directory / "results.json", (when, when))
    return directory


def test_list_runs_newest_first_and_old_runs_fall_back_to_report_md(tmp_path):
    old = make_run(tmp_path, "keepalive-502", "20260101-000000", True, 3600, html=False)
    new = make_run(tmp_path, "keepalive-502", "20260101-010000", False, 60)
    other = make_run(tmp_path, "retries", "20260101-003000", True, 600)
    (tmp_path / "retries" / "20260101-004000").mkdir()  # interrupted: no results.json
    runs = report.list_runs(tmp_path)
    assert [r.directory for r in runs] == [new, other, old]
    assert runs[0].passed is False and runs[0].variants == ("broken", "fixed")
    assert runs[0].report == new / "report.html"
    assert runs[2].report == old / "report.md"
    assert [r.directory for r in report.list_runs(tmp_path, "retries")] == [other]


def test_lab_report_prints_the_newest_report_last(tmp_path, capsys):
    make_run(tmp_path, "keepalive-502", "20260101-000000", True, 3600)
    newest = make_run(tmp_path, "keepalive-502", "20260101-010000", True, 5)
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(newest / "report.html")
    assert cli.main(["report", "keepalive-502", "--results-dir", str(tmp_path / "none")]) == 2
    assert "no runs under" in capsys.readouterr().err


def test_progress_reads_errors_by_status_and_the_current_p99(tmp_path):
    files = LoadFiles(tmp_path)
    files.stats_csv.write_text("Type,Name,Request Count,Failure Count\n,Aggregated,120,9\n")
    files.failures_csv.write_text(
        "Method,Name,Error,Occurrences\n"
        "POST,/work,LocustBadStatusCode(code=502),7\n"
        "GET,/work,\"HTTPError('503 Server Error: x for url: /work')\",1\n"
        "POST,/work,ConnectionResetError(104),1\n"
    )
    files.history_csv.write_text(
        "Timestamp,Name,99%\n1,Aggregated,N/A\n2,/work,80\n3,Aggregated,42\n"
    )
    progress = read_progress(files)
    assert progress == Progress(120, 9, {"502": 7, "503": 1, "no response": 1}, 42.0)
    text = progress_text(progress)
    assert text == "120 requests  [red]errors 502: 7, 503: 1, no response: 1[/]  p99 42 ms"
    assert progress_text(Progress(10, 0)) == "10 requests  no errors"
    assert progress_text(None) == "[dim]starting[/]"


def test_a_lab_series_may_be_numpy_arrays_or_empty():
    results = sample_results()
    arrays = Plot("np", "x/s", lambda r: {"a": (np.arange(5), np.arange(5) * 2.0), "b": ([], [])})
    assert plots.render(arrays, results).startswith(b"\x89PNG")


def test_progress_splits_client_retries_from_user_requests(tmp_path):
    # Locust counts every attempt (its Aggregated row); a lab's table counts user requests
    # (the first attempts): the retries lab's layers variant showed 3291 vs 1941.
    files = LoadFiles(tmp_path)
    files.stats_csv.write_text(
        "Type,Name,Request Count,Failure Count\n"
        "GET,/work,1941,300\n"
        "GET,/work (client retry),1350,600\n"
        ",Aggregated,3291,900\n"
    )
    progress = read_progress(files)
    assert progress is not None
    assert (progress.requests, progress.client_retries) == (3291, 1350)
    text = progress_text(replace(progress, errors={"503": 900}))
    assert text.startswith("1941 user requests + 1350 client retries  ")
    assert "[red]failed attempts 503: 900[/]" in text
    assert "3291" not in text


def test_the_line_after_a_variant_splits_client_retries(capsys):
    from types import SimpleNamespace

    from labs.engine.analysis.metrics import Request, summarize
    from labs.engine.cli.output import LiveProgress

    first = [Request(1000.0 + i / 10, "/work", 503 if i < 3 else 200, 5.0) for i in range(10)]
    retries = [Request(1001.5, "/work (client retry)", 200, 5.0)] * 3
    live = SimpleNamespace(tasks={}, interactive=True, lab=SimpleNamespace(name="retries"))
    LiveProgress.done(live, summarize("layers", first + retries))  # type: ignore[arg-type]
    line = " ".join(capsys.readouterr().err.split())
    assert "layers: 10 user requests + 3 client retries (status of all 13 attempts:" in line
    LiveProgress.done(live, summarize("no-retry", first))  # type: ignore[arg-type]
    assert "no-retry: 10 requests (200: 7, 503: 3)" in " ".join(capsys.readouterr().err.split())


def test_plots_are_drawn_in_forked_processes_and_match_drawing_them_in_turn(tmp_path):
    def where(_result):
        raise RuntimeError(f"drawn in {os.getpid()}")

    lab = sample_lab(tmp_path, plots=(attempts_plot(), Plot("Where", "pid", where)))
    results = sample_results()
    at_once = plots.render_all(lab, results)
    in_turn = plots.render_all(lab, results, processes=1)
    assert [(p.title, p.filename, p.png) for p in at_once][:-1] == [
        (p.title, p.filename, p.png) for p in in_turn
    ][:-1]
    assert all(p.png.startswith(b"\x89PNG") for p in at_once[:-1])
    assert in_turn[-1].error == f"RuntimeError: drawn in {os.getpid()}"
    drawer = int(at_once[-1].error.rsplit(" ", 1)[1])
    assert drawer != os.getpid() and at_once[-1].png == b""
