"""The example GitHub workflow (.github/workflows/labs.yml) runs only what the Makefile has,
and uploads the JUnit file that its test run writes. No YAML library is needed: the
`run:` lines are read with a regex (the workflow keeps each command on one line)."""

from __future__ import annotations

import re
import shlex

from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "labs.yml"
RUN = re.compile(r"^\s*(?:-\s+)?run:\s*(?P<command>.*?)\s*$", re.MULTILINE)
TARGET = re.compile(r"^(?P<target>[A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)


def run_commands() -> list[str]:
    commands = [m["command"] for m in RUN.finditer(WORKFLOW.read_text())]
    assert commands, "the workflow runs something"
    assert not [c for c in commands if c in ("|", ">", "|-", ">-")], "one line per run:"
    return commands


def make_targets() -> set[str]:
    return {m["target"] for m in TARGET.finditer((REPO_ROOT / "Makefile").read_text())}


def make_invocations(command: str) -> list[list[str]]:
    """Each `make ...` in a shell line (after sudo and its options), as its words."""
    found = []
    for part in re.split(r"&&|\|\||;", command):
        words = shlex.split(part)
        while words and (words[0] == "sudo" or words[0].startswith("-") or "=" in words[0]):
            words = words[1:]  # sudo, its options, VAR=value
        if words and words[0] == "make":
            found.append(words[1:])
    return found


def test_every_make_target_the_workflow_runs_exists():
    targets = make_targets()
    assert {"test", "setup", "lint"} <= targets, "the Makefile parses"
    invoked = []
    for command in run_commands():
        for args in make_invocations(command):
            named = [a for a in args if not a.startswith("-") and "=" not in a]
            assert named, f"a make target in {command!r}"
            missing = [t for t in named if t not in targets]
            assert not missing, f"{command!r}: no such make target {missing}"
            invoked += named
    assert "test" in invoked


def test_every_command_is_make_or_installs_what_make_needs():
    for command in run_commands():
        for part in re.split(r"&&|\|\||;", command):
            words = [w for w in shlex.split(part) if w != "sudo" and "=" not in w]
            words = [w for w in words if not w.startswith("--preserve-env")]
            assert words[0] in ("make", "apt-get"), f"{command!r} runs {words[0]}"


def test_the_junit_file_the_tests_write_is_uploaded():
    text = WORKFLOW.read_text()
    written = re.findall(r"--junitxml=(\S+?)['\"\s]", text)
    assert written == ["results/junit-pytest.xml"]
    uploaded = re.findall(r"^\s*path:\s*(\S+)\s*$", text, re.MULTILINE)
    assert written[0] in uploaded and "results/" in uploaded
    assert "actions/upload-artifact@" in text


def test_ci_run_writes_the_same_junit_file():
    assert "--junitxml=results/junit-pytest.xml" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_parsers_handle_what_they_claim():
    assert make_invocations("sudo --preserve-env=CI make test PYTEST_ARGS='-v -m \"x\"'") == [
        ["test", 'PYTEST_ARGS=-v -m "x"']
    ]
    assert make_invocations("sudo apt-get update && make -j2 lint") == [["-j2", "lint"]]
    assert {"docker-setup", "images-offline"} <= make_targets()
    assert not {"PYTHON", "BIN", "VENV"} & make_targets(), "assignments are not targets"
