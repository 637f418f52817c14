"""stale-dns's exercise: how nginx finds the api, as a learner edits it, graded on
whether nginx follows the api to its new address."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from labs.engine.analysis.metrics import VariantResult
from labs.engine.exercises import edits
from labs.engine.model.spec import Exercise, Variant
from labs.stale_dns.measure import StaleDnsNumbers
from labs.stale_dns.scenario import MOVE, RELOAD, SETTLE_S, TTL_S

LOOKUPS = ("address", "upstream", "resolver")
"""How nginx finds the api: by address (no DNS), or its name in an upstream block, or
its name in a proxy_pass variable resolved through `resolver`."""
MAX_VALID_S = 3600


def settings(variant: Variant) -> str:
    """The exercise's editable file: how nginx finds the api, and the deploy's steps."""
    spec = variant.nginx
    lookup = spec.dns or "address"
    reload = "true" if any(f.action == "reload" for f in variant.faults) else "false"
    move = "true" if any(f.action == "move" for f in variant.faults) else "false"
    return f"""\
# stale-dns exercise. Mid-run the api moves to a new address (a redeploy on another
# host): the new api starts, DNS (api.lab) is updated, the old api stops. From then on
# every request through nginx fails. Change the values below, then run
# `lab grade stale-dns`.

[nginx]
# How nginx finds the api: "upstream" (server api.lab:PORT in an upstream block),
# "resolver" (the name in a proxy_pass variable, with `resolver ... ipv6=off`) or
# "address" (the api's address written into the config).
lookup = "{lookup}"
# With lookup = "resolver": how long nginx keeps an answer (resolver ... valid=), in
# seconds.
valid_s = {_seconds(spec.dns_valid)}

[deploy]
# The api moves to a new address mid-run: the situation under test.
move = {move}
# Run `nginx -s reload` right after the move (a deploy hook).
reload_nginx = {reload}
"""


def _seconds(valid: str) -> int:
    return int(valid.removesuffix("s"))


def apply_settings(base: Variant, data: Mapping[str, Any]) -> Variant:
    lookup = edits.choice(data, "nginx.lookup", LOOKUPS)
    valid = edits.whole(data, "nginx.valid_s", 1, MAX_VALID_S)
    move = edits.boolean(data, "deploy.move")
    reload = edits.boolean(data, "deploy.reload_nginx")
    dns = "" if lookup == "address" else lookup
    nginx = replace(base.nginx, dns=dns, dns_valid=f"{valid}s")
    faults = (MOVE,) * move + (RELOAD,) * (move and reload)
    return replace(base, nginx=nginx, faults=faults, parts=("dns",) if dns else ())


def move_removed(variant: Variant) -> str | None:
    if not any(f.action == "move" for f in variant.faults):
        return (
            "deploy.move = false takes the move away: nginx has nothing to follow, so nothing "
            "fails, and nothing is learned. Addresses change on every redeploy; keep the move "
            "and make nginx follow it."
        )
    return None


def dns_removed(variant: Variant) -> str | None:
    if not variant.nginx.dns:
        return (
            'nginx.lookup = "address" takes DNS away: the config names the address the api '
            "had when nginx started, and the move leaves it dead, as before. The name is how "
            "a client learns the new address; make nginx ask for it again."
        )
    return None


def failures(result: VariantResult) -> str:
    n = result.numbers(StaleDnsNumbers)
    return f"after the move {n.after}; from {SETTLE_S:g} s after it {n.settled}"


def holds(result: VariantResult) -> bool:
    return result.numbers(StaleDnsNumbers).followed()


EXERCISE = Exercise(
    task=(
        "After a redeploy moved the api to a new address, every request through nginx fails "
        "with 502, although DNS already answers with the new address and the api is up "
        "there. Look at when nginx looks the name up, and how long it keeps the answer."
    ),
    broken="resolve-once",
    fixed="resolver",
    settings=settings,
    apply=apply_settings,
    measure=failures,
    holds=holds,
    expected=f"0 failed requests from {SETTLE_S:g} s after the move",
    advice=f"nginx must look the name up again after the move, within {SETTLE_S:g} s",
    guards=(move_removed, dns_removed),
    hints=(
        "Read nginx's error log: which address does it still connect to? Ask dnsmasq "
        "(dig @127.0.0.9 api.lab) which address the name has now.",
        "nginx resolves a name in an upstream block once, when it loads its config. It asks "
        "again only through a `resolver`, for a name in a variable in proxy_pass (nginx >= "
        "1.27.3 also has `server ... resolve` in an upstream; Debian 12 ships 1.22).",
        f'Set nginx.lookup = "resolver" and valid_s = {TTL_S:g}: nginx asks again once its '
        "answer is that old. (deploy.reload_nginx = true works too, but only where the deploy "
        "knows every nginx that must reload.)",
    ),
    grade_in_parallel=False,
)
