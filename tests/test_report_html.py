"""report.html in a real browser (headless Chromium): it renders, every embedded plot
loads, and a screenshot is written for a human to look at.

`make test` installs Chromium (scripts/ensure-system-deps.sh chromium). Without it
the test is skipped on a laptop and fails in CI (CI set), where a skipped check
would prove nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from labs.engine.reporting import report
from tests.conftest import REPO_ROOT
from tests.report_sample import attempts_plot, judge, sample_lab, sample_results

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these, its attempts to reach the (closed) network pile up
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# Appended to a copy of the page: after load, count the images that really decoded.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0);
  document.body.dataset.images = `${loaded.length}/${images.length}`;
  document.body.dataset.widths = images.map((i) => i.naturalWidth).join(",");
});
</script>"""

SCREENSHOT = REPO_ROOT / "results" / "report-html" / "report.png"


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    message = "chromium not found: apt-get install chromium (make test installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def browse(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    lab = sample_lab(tmp_path, plots=(attempts_plot(),))
    results = sample_results()
    checks = judge(lab, results)
    out = tmp_path / "run"
    out.mkdir()
    report.write(report.results_document(lab, results, checks, out), lab, out, results, checks)
    return out / "report.html"


def test_report_renders_in_chromium_with_every_image_loaded(report_html: Path, tmp_path: Path):
    browser = find_browser()
    page = report_html.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", IMAGE_PROBE + "\n</body>"))
    dumped = browse(
        browser,
        tmp_path / "profile-dom",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    expected = page.count("<img ")
    assert expected == 5
    assert f'data-images="{expected}/{expected}"' in dom, dom[-500:]
    widths = re.search(r'data-widths="([\d,]+)"', dom)
    assert widths and all(int(w) >= 800 for w in widths[1].split(","))
    assert "Does a 3 s outage reach the clients?" in dom
    assert "ALL CHECKS PASSED" in dom

    screenshot = SCREENSHOT  # kept for a person to look at
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = browse(
        browser,
        tmp_path / "profile-shot",
        "--window-size=1400,2600",
        f"--screenshot={screenshot}",
        report_html.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (2600, 1400)
    # not a blank page: the plots and tables put many distinct shades on screen
    assert pixels[:, :, :3].std() > 0.05
    print(f"screenshot: {screenshot}")
