"""ONE run of the overload lab's check per test session, shared by the tests that need
it (test_lab.py judges it, test_simulate.py compares the model with it): a full run
takes minutes of CI."""

from __future__ import annotations

import os

import pytest

from tests.conftest import passed_check


@pytest.fixture(scope="session")
def overload_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`lab check overload --json`'s document, every check passed and proven."""
    base = tmp_path_factory.mktemp("overload")
    env = {**os.environ, "LAB_STATE_DIR": str(base / "state"), "COLUMNS": "200"}
    return passed_check("overload", env, base / "results", timeout=420)
