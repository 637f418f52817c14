"""One run's results on disk: results.json (a stable, machine-readable schema),
report.md, the plots as PNG files and report.html. Every file is written to a
temporary name first and renamed, so a reader never sees half a report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labs.engine.analysis.metrics import VariantResult
from labs.engine.errors import LabError
from labs.engine.model.spec import Lab
from labs.engine.model.verdicts import CheckResult, all_ok
from labs.engine.reporting import html, plots, tables
from labs.engine.runtime.state import write_json_atomic

SCHEMA_VERSION = 2
"""2: each check has judged, fails_without_fix and without_fix (labs/engine/model/verdicts.py)."""


def create_results_dir(root: Path, lab: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / lab
    try:
        base.mkdir(parents=True, exist_ok=True)
        for suffix in ("", *(f"-{n}" for n in range(2, 100))):
            path = base / f"{stamp}{suffix}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise LabError(f"cannot write results under {root}: {exc.strerror}") from None
    raise LabError(f"cannot create a new results directory under {base}")


def results_document(
    lab: Lab,
    results: Mapping[str, VariantResult],
    checks: Sequence[CheckResult],
    results_dir: Path,
    topology: str = "local",
) -> dict[str, object]:
    variants = {}
    for name, result in results.items():
        data = result.to_dict()
        data["summary"] = lab.variant(name).summary
        variants[name] = data
    return {
        "schema": SCHEMA_VERSION,
        "lab": lab.name,
        "title": lab.title,
        "question": lab.question,
        "topology": topology,
        "passed": all_ok(list(checks)),
        "results_dir": str(results_dir),
        "variants": variants,
        "checks": [c.to_dict() for c in checks],
    }


PLOTS_DIR = "plots"
HTML_NAME = "report.html"


def write(
    document: dict[str, object],
    lab: Lab,
    results_dir: Path,
    results: Mapping[str, VariantResult] | None = None,
    checks: Sequence[CheckResult] = (),
) -> None:
    """results.json and report.md; with the in-memory `results`, also the plots
    (plots/NN-title.png) and report.html. results.json goes first: it is what
    matters if drawing fails."""
    write_json_atomic(results_dir / "results.json", document)
    rendered = plots.render_all(lab, results) if results else []
    for plot in rendered:
        if plot.png:
            write_atomic(results_dir / PLOTS_DIR / plot.filename, plot.png)
    text = markdown(document, lab, rendered)
    if results:
        text += "\n" + tables.markdown(tables.render_all(lab, results))
    write_atomic(results_dir / "report.md", text.encode())
    if results is not None:
        page = html.render(
            lab,
            results,
            checks,
            rendered,
            str(results_dir),
            time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )
        write_atomic(results_dir / HTML_NAME, page.encode())


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


PROOF_WORDS: dict[object, str] = {True: "yes", False: "NO", "not_applicable": "not applicable"}


def markdown(document: dict, lab: Lab, rendered: Sequence[plots.RenderedPlot] = ()) -> str:
    lines = [f"# {lab.title}", "", f"> {lab.question}", ""]
    lines += ["## Variants", ""]
    lines += [
        "| variant | requests | status | p50 ms | p99 ms | nginx errors | upstream retries |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for name, v in document["variants"].items():
        status = ", ".join(f"{code}: {n}" for code, n in v["status"].items()) or "-"
        errors = ", ".join(f"{kind}: {n}" for kind, n in v["nginx_errors"].items()) or "-"
        lines.append(
            f"| {name} | {v['requests']} | {status} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} "
            f"| {errors} | {v['upstream_retried']} |"
        )
    lines += ["", "What each variant is:", ""]
    lines += [f"- **{name}**: {v['summary']}" for name, v in document["variants"].items()]
    lines += ["", "## Checks", ""]
    for check in document["checks"]:
        lines.append(f"- **{check['verdict']}** `{check['name']}`: {check['detail']}")
        proof = PROOF_WORDS.get(check.get("fails_without_fix"), "not proven")
        lines.append(f"  - fails without its fix: {proof} ({check.get('without_fix', '')})")
    verdict = "all checks passed" if document["passed"] else "at least one check FAILED"
    lines += ["", f"Verdict: {verdict}.", "", "## Requests per second (1 s buckets)", ""]
    for name, v in document["variants"].items():
        errors = [
            sum(n for code, n in b["status"].items() if not 200 <= int(code) < 400)
            for b in v["series"]
        ]
        lines.append(f"- {name}: errors per second: {' '.join(str(e) for e in errors)}")
    drawn = [p for p in rendered if p.png]
    if drawn:
        lines += ["", f"## Plots (all in one page: `{HTML_NAME}`)", ""]
        lines += [f"![{p.title}]({PLOTS_DIR}/{p.filename})" for p in drawn]
    lines += ["", f"Raw data: the variant folders in `{document['results_dir']}`.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunRecord:
    """A finished run found on disk (`lab report`)."""

    lab: str
    directory: Path
    finished: float
    """results.json's modification time (epoch seconds)."""
    passed: bool | None
    """None when results.json cannot be read."""
    variants: tuple[str, ...]

    @property
    def report(self) -> Path:
        """report.html, or report.md for a run written before there was one."""
        page = self.directory / HTML_NAME
        return page if page.exists() else self.directory / "report.md"


def list_runs(root: Path, lab: str | None = None) -> list[RunRecord]:
    """Runs under root/<lab>/<timestamp>/ that wrote results.json, newest first."""
    runs = []
    for path in root.glob(f"{lab or '*'}/*/results.json"):
        try:
            document = json.loads(path.read_text())
            finished = path.stat().st_mtime
        except (OSError, json.JSONDecodeError):
            continue
        passed = document.get("passed") if isinstance(document, dict) else None
        variants = tuple(document.get("variants", {})) if isinstance(document, dict) else ()
        runs.append(RunRecord(path.parent.parent.name, path.parent, finished, passed, variants))
    return sorted(runs, key=lambda run: run.finished, reverse=True)
