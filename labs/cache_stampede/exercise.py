"""cache-stampede's exercise: nginx's cache directives and the origin's Cache-Control, as
a learner edits them (applied to `cache`), graded on computations per expiry and the
latency after the warm-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.cache_stampede.measure import CacheNumbers
from labs.cache_stampede.scenario import (
    COALESCED_MAX,
    DURATION_S,
    MAX_AGE_S,
    MIN_EXPIRIES,
    USE_STALE,
    WARM_P99_MAX_MS,
    cache,
    nginx,
    origin,
)
from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant


def _directive(variant: Variant, name: str) -> str:
    """The arguments of one `location /` directive ("" when absent)."""
    for line in variant.nginx.extra_location:
        head, _, rest = line.partition(" ")
        if head == name:
            return rest
    return ""


def settings(variant: Variant) -> str:
    """The exercise's editable file."""
    args = variant.services[0].args
    lock = "true" if _directive(variant, "proxy_cache_lock") == "on" else "false"
    background = "true" if _directive(variant, "proxy_cache_background_update") == "on" else "false"
    stale = ", ".join(f'"{s}"' for s in _directive(variant, "proxy_cache_use_stale").split())
    return f"""\
# cache-stampede exercise. The origin computes the hot key's answer in 300-500 ms and
# nginx caches it; every few seconds the origin is flooded and the clients wait half a
# second. Change the values below, then run `lab grade cache-stampede`.

[nginx]
# proxy_cache_lock: one request at a time may fill a cache element; the others wait.
cache_lock = {lock}
# proxy_cache_use_stale: when nginx may answer with the expired copy. Any of
# {", ".join(f'"{s}"' for s in USE_STALE)}; [] = never.
use_stale = [{stale}]
# proxy_cache_background_update: refresh an expired element in a subrequest, answering
# the request that found it expired with the stale copy (needs "updating" above).
background_update = {background}

[origin]
# Cache-Control: max-age, seconds the answer is fresh.
max_age_s = {args["max-age-s"]}
# Cache-Control: stale-while-revalidate, seconds a stale answer may be served while one
# request refreshes it (0 = not sent).
stale_while_revalidate_s = {args["stale-while-revalidate-s"]}
"""


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    lock = edits.boolean(data, "nginx.cache_lock")
    background = edits.boolean(data, "nginx.background_update")
    stale = edits.table(data, "nginx").get("use_stale")
    if not isinstance(stale, list) or any(s not in USE_STALE for s in stale):
        shown = ", ".join(f'"{s}"' for s in USE_STALE)
        raise ValueError(f"nginx.use_stale must be a list of {shown}")
    max_age = edits.whole(data, "origin.max_age_s", 1, 3600)
    swr = edits.whole(data, "origin.stale_while_revalidate_s", 0, 3600)
    return replace(
        base,
        nginx=nginx(cache(lock, tuple(dict.fromkeys(stale)), background)),
        services=origin(swr, max_age),
    )


def longer_max_age(variant: Variant) -> str | None:
    max_age = variant.services[0].args["max-age-s"]
    if isinstance(max_age, int) and max_age > MAX_AGE_S:
        return (
            f"origin.max_age_s = {max_age} makes the stampede rarer, not smaller: every expiry "
            f"still floods the origin, and a {DURATION_S} s run sees fewer of them. Keep "
            f"max_age_s at most {MAX_AGE_S}."
        )
    return None


def symptom(result: VariantResult) -> str:
    n = result.numbers(CacheNumbers)
    return (
        f"{n.per_expiry:g} origin computations per expiry over {n.expiries} expiries, p99 "
        f"{n.warm_p99_ms:,.1f} ms after the warm-up"
    )


def holds(result: VariantResult) -> bool:
    try:
        n = result.numbers(CacheNumbers)
    except TypeError:  # nothing was measured: nothing holds
        return False
    return (
        n.per_expiry <= COALESCED_MAX
        and n.expiries >= MIN_EXPIRIES
        and n.warm_p99_ms <= WARM_P99_MAX_MS
        and result.failures == 0
    )


EXERCISE = Exercise(
    task=(
        "A hot key is cached by nginx for 2 s. Every time it expires the origin gets a flood "
        "of identical requests, and for half a second every client waits. Look at what "
        "nginx does with the requests that arrive while the new answer is being computed."
    ),
    broken="cache",
    fixed="stale-while-revalidate",
    settings=settings,
    apply=apply_settings,
    measure=symptom,
    holds=holds,
    expected=(
        f"<= {COALESCED_MAX:g} origin computations per expiry over >= {MIN_EXPIRIES} expiries, "
        f"p99 <= {WARM_P99_MAX_MS:g} ms after the warm-up, no failed request"
    ),
    advice="let one request refresh an expired answer while the others are served the stale one",
    guards=(longer_max_age,),
    hints=(
        "Between the expiry and the new answer, every request is a miss that goes to the "
        "origin. How could nginx answer them without the origin?",
        "proxy_cache_lock alone does not help here: in nginx 1.22 it only coalesces the "
        "misses of an element that is not cached at all. An expired element can be served "
        'stale while one request refreshes it: use_stale = ["updating"].',
        'With "updating" the request that refreshes still waits for the origin; '
        "background_update = true answers it with the stale copy too.",
    ),
    grade_in_parallel=False,
)
