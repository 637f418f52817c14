"""labs.engine.exercises.edits.wholes: a list of whole numbers in an exercise's TOML."""

from __future__ import annotations

import pytest

from labs.engine.exercises import edits

DATA = {"nginx": {"upstream": {"weights": [1, 20, 3], "bad": [1, True], "one": 2}}}


def test_a_list_of_whole_numbers_in_range():
    assert edits.wholes(DATA, "nginx.upstream.weights", 1, 100) == (1, 20, 3)
    assert edits.wholes({"w": []}, "w", 1, 100) == ()


@pytest.mark.parametrize(
    "key, message",
    [
        ("nginx.upstream.one", "nginx.upstream.one must be a list of whole numbers"),
        ("nginx.upstream.bad", "each of nginx.upstream.bad must be a whole number from 1 to 100"),
        (
            "nginx.upstream.weights",
            "each of nginx.upstream.weights must be a whole number from 1 to 10",
        ),
    ],
)
def test_a_wrong_list_is_a_one_line_error(key: str, message: str):
    high = 10 if key.endswith("weights") else 100
    with pytest.raises(ValueError, match=f"^{message}$"):
        edits.wholes(DATA, key, 1, high)


def test_a_missing_list_names_its_key():
    with pytest.raises(KeyError, match="nginx.upstream.weight is missing"):
        edits.wholes(DATA, "nginx.upstream.weight", 1, 100)
