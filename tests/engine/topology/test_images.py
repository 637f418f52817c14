"""An image's source digest (labs/engine/topology/images.py): what `make images` labels
each compose image with, and what the compose topology compares it against."""

from __future__ import annotations

import shutil
import subprocess
import sys

from labs.engine.model.spec import REPO_ROOT
from labs.engine.topology import images


def copy_sources(tmp_path):
    for role in images.SOURCES:
        for name in images.SOURCES[role]:
            source, target = REPO_ROOT / name, tmp_path / name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
    return tmp_path


def test_a_changed_service_file_changes_only_the_services_digest(tmp_path):
    root = copy_sources(tmp_path)
    before = {role: images.digest(role, root) for role in images.SOURCES}
    assert before == {role: images.digest(role) for role in images.SOURCES}, "same bytes"
    assert len(set(before.values())) == 3
    (root / "services" / "api" / "__pycache__").mkdir(exist_ok=True)
    (root / "services" / "api" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    assert images.digest("services", root) == before["services"], "bytecode does not count"
    app = next((root / "services" / "api").glob("*.py"))
    app.write_text(app.read_text() + "\n# changed\n")
    after = {role: images.digest(role, root) for role in images.SOURCES}
    assert after["services"] != before["services"]
    assert after["nginx"] == before["nginx"] and after["locust"] == before["locust"]
    (root / "compose" / "nginx" / "default.conf").write_text("events {}\n")
    assert images.digest("nginx", root) != before["nginx"]


def test_the_command_prints_a_digest_and_refuses_an_unknown_image():
    module = [sys.executable, "-m", "labs.engine.topology.images"]
    done = subprocess.run([*module, "nginx"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0 and done.stdout.strip() == images.digest("nginx")
    bad = subprocess.run([*module, "redis"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "usage:" in bad.stderr
