"""loadtests/rollout.py: the client-side end of a rolling restart, counted in distinct
api processes (X-Replica-Boot)."""

from __future__ import annotations

import pytest

from loadtests.rollout import BOOT_HEADER, RolloutWatch


def answered(boot: str) -> dict[str, str]:
    return {"X-Replica": "api-1", BOOT_HEADER: boot}


def test_the_rollout_is_over_once_when_the_last_new_process_answers():
    watch = RolloutWatch(expected_boots=4)
    seen = [watch.saw(answered(b), now=t) for t, b in enumerate("aabcbcaddde")]
    assert seen == [False] * 7 + [True] + [False] * 3, "exactly once, at the 4th boot"
    assert watch.done_at == 7 and watch.boots == {"a", "b", "c", "d"}


def test_answers_without_a_boot_do_not_count():
    watch = RolloutWatch(expected_boots=1)
    for headers in (None, {}, {"X-Replica": "api-1"}, {BOOT_HEADER: ""}):
        assert not watch.saw(headers, now=1.0)  # nginx's own 502 page, a failed request
    assert watch.saw(answered("a"), now=2.0)


def test_zero_means_not_watching():
    watch = RolloutWatch(expected_boots=0)
    assert not any(watch.saw(answered(str(n)), now=n) for n in range(10))
    assert watch.done_at is None
    with pytest.raises(ValueError):
        RolloutWatch(expected_boots=-1)
