"""When things happened in a run: the fault events, typed, and the windows they cut.

Every time is in seconds since the run's first request (t = 0 of the series). A lab
reads its faults and phases here instead of re-parsing `VariantResult.events`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labs.engine.analysis.metrics import VariantResult
from labs.engine.analysis.stats import mapping, number


@dataclass(frozen=True)
class FaultEvent:
    """One fault step as the engine applied it."""

    t_s: float
    action: str
    """settings | stop | kill | start | remove | clear."""
    service: str
    replica: int | None
    settings: Mapping[str, float]
    label: str = ""


@dataclass(frozen=True)
class Window:
    """A span of the run: [start_s, end_s)."""

    start_s: float
    end_s: float
    name: str = ""

    def holds(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def fault_events(result: VariantResult) -> tuple[FaultEvent, ...]:
    """The run's fault events, in order."""
    return tuple(
        FaultEvent(
            t_s=number(e.get("t_s")),
            action=str(e.get("action") or "settings"),
            service=str(e.get("service") or ""),
            replica=e["replica"] if isinstance(e.get("replica"), int) else None,
            settings={k: number(v) for k, v in mapping(e.get("settings")).items()},
            label=str(e.get("label") or ""),
        )
        for e in result.events
        if e.get("what") == "fault"
    )


def first_fault_s(result: VariantResult) -> float:
    """When the first fault landed (NaN: none did, so a check that needs one fails)."""
    events = fault_events(result)
    return events[0].t_s if events else float("nan")


def fault_windows(result: VariantResult) -> tuple[Window, ...]:
    """Each fault, from its event to the next event on the same service and replica, or
    to the end of the run. A settings event whose values are all zero clears the fault
    (no window); one that only sets `outage_s` ends on its own; a stopped or killed
    process stays down until a "start" event, which ends its window and opens none."""
    faults = fault_events(result)
    windows = []
    for index, event in enumerate(faults):
        if event.action == "settings" and not any(event.settings.values()):
            continue
        if event.action in ("start", "clear"):
            continue
        target = (event.service, event.replica)
        later = [e.t_s for e in faults[index + 1 :] if (e.service, e.replica) == target]
        end = later[0] if later else result.duration_s
        if set(event.settings) == {"outage_s"}:
            end = min(end, event.t_s + event.settings["outage_s"])
        start = max(0.0, event.t_s)
        windows.append(Window(start, max(start, end), event.label or event.action))
    return tuple(windows)


def phases(
    result: VariantResult, names: Mapping[str, str], first: str = "before"
) -> tuple[Window, ...]:
    """The run cut at every fault event: the first phase is `first`, each later one is
    named by `names[action]` of the event that began it ("?" for an unnamed action)."""
    cuts = [(first, 0.0)] + [(names.get(e.action, "?"), e.t_s) for e in fault_events(result)]
    ends = [t for _, t in cuts[1:]] + [max(result.duration_s, cuts[-1][1])]
    return tuple(Window(start, end, name) for (name, start), end in zip(cuts, ends, strict=True))


def around(window: Window | None, end_s: float) -> tuple[Window, Window, Window]:
    """before / during / after one window (an empty "during" when there is none)."""
    if window is None:
        return (
            Window(0.0, end_s, "before"),
            Window(end_s, end_s, "during"),
            Window(end_s, end_s, "after"),
        )
    return (
        Window(0.0, window.start_s, "before"),
        Window(window.start_s, window.end_s, "during"),
        Window(window.end_s, max(end_s, window.end_s), "after"),
    )


def inside(times: Sequence[float], window: Window) -> int:
    """How many of `times` fall in `window`."""
    return sum(window.holds(t) for t in times)


def fault_took_s(result: VariantResult, action: str) -> float:
    """How long the first `action` fault step took to apply (a "start" returns once the
    restarted replicas answer /readyz); NaN: no such step was timed."""
    for event in result.events:
        if event.get("what") == "fault" and event.get("action") == action:
            return number(event.get("took_s"))
    return float("nan")
