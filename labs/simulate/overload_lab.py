"""The overload lab's variants (labs/overload/scenario.py) as the model's parameters:
read from each variant's own load, api options and trigger, never retyped."""

from __future__ import annotations

from collections.abc import Mapping

from labs.engine.model.spec import Variant
from labs.overload import scenario
from labs.overload.measure import WARMUP_S
from labs.simulate.overload import GatewayLimit, OverloadParams

LOCUST_START_S = 2.0
"""The trigger's time counts from Locust's start; its first request leaves 1-3 s later
(scenario.TRIGGER_AT_S), and the model's clock starts at the first request."""
NOT_MODELLED: Mapping[str, str] = {}
"""Variants the model leaves out, and why; any other variant it cannot read is an error."""
POOL_OPTIONS = {"workers", "work-ms", "queue", "queue-limit", "max-queue-ms", "shed-expired"}
MODELLED_ENV = {
    "LAB_RATE",
    "LAB_ARRIVALS_S",
    "LAB_CLIENT_TIMEOUT_S",
    "LAB_CLIENT_ATTEMPTS",
    "LAB_RETRY_BUDGET",
    "LAB_THROTTLE",
    "LAB_THROTTLE_K",
    "LAB_THROTTLE_WINDOW_S",
    "LAB_SEED",
}


class NotModelled(ValueError):
    pass


def params_of(variant: Variant) -> OverloadParams:
    """The model's parameters for one of the lab's variants; NotModelled if the variant
    uses anything the model does not have."""
    services = {s.name: s for s in variant.services}
    if set(services) - {"api", "gateway"} or variant.parts or variant.controller:
        raise NotModelled(f"{variant.name}: not the api (and a gateway) behind nginx")
    pool = {k: v for k, v in services["api"].args.items() if k != "shutdown-timeout"}
    env = variant.load.env
    unknown = (set(pool) - POOL_OPTIONS) | (set(env) - MODELLED_ENV)
    if unknown or variant.load.locustfile != "open_loop.py":
        raise NotModelled(f"{variant.name}: the model has no {', '.join(sorted(unknown))}")
    if float(str(pool.get("max-queue-ms", 0))):
        raise NotModelled(f"{variant.name}: the model has no queue time limit")
    on, off = _trigger(variant)
    return OverloadParams(
        rate_per_s=float(env["LAB_RATE"]),
        workers=int(str(pool["workers"])),
        work_ms=float(str(pool["work-ms"])),
        timeout_s=float(env["LAB_CLIENT_TIMEOUT_S"]),
        attempts=int(env["LAB_CLIENT_ATTEMPTS"]),
        factor=on[1],
        trigger_at_s=on[0] - LOCUST_START_S,
        trigger_s=off - on[0],
        arrivals_s=float(env["LAB_ARRIVALS_S"]),
        queue="lifo" if pool.get("queue") == "lifo" else "fifo",
        queue_limit=int(str(pool.get("queue-limit", 0))),
        shed_expired=pool.get("shed-expired") == "on",
        retry_budget=env["LAB_RETRY_BUDGET"] == "on",
        throttle=env["LAB_THROTTLE"] == "on",
        throttle_k=float(env["LAB_THROTTLE_K"]),
        throttle_window_s=float(env["LAB_THROTTLE_WINDOW_S"]),
        gateway=_gateway(variant.name, services["gateway"].args) if "gateway" in services else None,
        seed=int(env["LAB_SEED"]),
        warmup_s=WARMUP_S,
        recovery_s=scenario.RECOVERY_S,
        recovered=scenario.RECOVERED,
        stays_down=scenario.STAYS_DOWN,
    )


def _trigger(variant: Variant) -> tuple[tuple[float, float], float]:
    """((start, factor), end) of the variant's one work-factor trigger."""
    steps = [(f.at_s, float(str(f.settings.get("work_factor")))) for f in variant.faults]
    if len(steps) != 2 or steps[0][1] <= 1 or steps[1][1] != 0:
        raise NotModelled(f"{variant.name}: not one work_factor trigger")
    return steps[0], steps[1][0]


GATEWAY_PASSES = {"retry-strategy": "none", "attempt-timeout": 0, "adaptive-limit": "on"}
"""The gateway the model has: no retries, no per-attempt timeout, the adaptive limit on."""


def _gateway(name: str, args: Mapping[str, object]) -> GatewayLimit:
    options = {k: v for k, v in args.items() if k not in ("shutdown-timeout", "max-connections")}
    passes = all(options.pop(k, None) == v for k, v in GATEWAY_PASSES.items())
    try:
        limit = GatewayLimit(
            initial=int(str(options.pop("adaptive-initial"))),
            min_limit=int(str(options.pop("adaptive-min"))),
            max_limit=int(str(options.pop("adaptive-max"))),
            target_ms=float(str(options.pop("adaptive-target-ms"))),
            backoff=float(str(options.pop("adaptive-backoff"))),
            deadline_s=float(str(options.pop("retry-deadline"))),
        )
    except KeyError as exc:
        raise NotModelled(f"{name}: the gateway's {exc} is not set") from None
    connections = int(str(args.get("max-connections", 0)))
    if not passes or options or connections < limit.max_limit:
        raise NotModelled(f"{name}: the model's gateway has no {', '.join(sorted(options))}")
    return limit


def lab_params() -> dict[str, OverloadParams]:
    """Every modelled variant's parameters (those in NOT_MODELLED left out)."""
    return {v.name: params_of(v) for v in scenario.VARIANTS if v.name not in NOT_MODELLED}
