"""torch.profiler's view of an epoch, from its Chrome trace: when the GPU worked, step by step.

Each step runs inside ``record_function(STEP)`` (a ``user_annotation`` span on the CPU side).
A GPU activity (``kernel``, ``gpu_memcpy``, ``gpu_memset``) belongs to the step whose CPU span
holds the runtime call that launched it (``cuda_runtime`` / ``cuda_driver`` events share the
activity's ``correlation`` id); backward kernels are launched from autograd's device thread,
inside the step's span in time, so containment is by time, not by thread. An activity without
a launch found is placed by its own start. A step's GPU window runs from its first activity's
start to its last one's end. Then:

- ``between_steps_idle``: the gaps between one step's window and the next, over the span from
  the first window's start to the last one's end (what loadertune's CUDA events measure);
- ``kernel_idle``: the share of that span with no GPU activity at all (it also counts the
  GPU waiting inside a step, for a CPU that launches kernels slower than they run).

On the CPU (``--device cpu``) the same arithmetic runs with ``cpu_op`` events as activities,
so every line of it is exercised without a GPU. Times in the trace are microseconds.

>>> events = [_ann(0, 10), _ann(20, 30), _op(1, 4), _op(22, 29)]
>>> view = trace_view(events, ("cpu_op",))
>>> view["steps"], round(view["between_steps_idle"], 3), round(view["kernel_idle"], 3)
(2, 0.643, 0.643)
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

STEP = "loadertune_gpu_check_step"
GPU_ACTIVITIES = ("kernel", "gpu_memcpy", "gpu_memset")
CPU_ACTIVITIES = ("cpu_op",)
LAUNCHES = ("cuda_runtime", "cuda_driver")
ANNOTATION = "user_annotation"


@dataclass(frozen=True)
class Span:
    start: float
    end: float


def _category(event: dict[str, Any]) -> str:
    return str(event.get("cat") or "").lower()


def _span(event: dict[str, Any]) -> Span:
    start = float(event["ts"])
    return Span(start, start + float(event.get("dur") or 0.0))


def _complete(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("ph") == "X" and "ts" in e]


def step_spans(events: Iterable[dict[str, Any]], name: str = STEP) -> list[Span]:
    """The CPU-side spans of the steps, in time order."""
    found = [_span(e) for e in events if _category(e) == ANNOTATION and e.get("name") == name]
    return sorted(found, key=lambda s: s.start)


def _correlation(event: dict[str, Any]) -> Any:
    return (event.get("args") or {}).get("correlation")


def launch_times(events: Iterable[dict[str, Any]]) -> dict[Any, float]:
    """Correlation id -> when the runtime call that launched it began (CPU side)."""
    return {
        _correlation(e): float(e["ts"])
        for e in events
        if _category(e) in LAUNCHES and _correlation(e) is not None
    }


def _step_of(at: float, steps: Sequence[Span], starts: Sequence[float]) -> int | None:
    k = bisect.bisect_right(starts, at) - 1
    return k if k >= 0 and at <= steps[k].end else None


def step_windows(
    events: Sequence[dict[str, Any]], activities: Sequence[str], name: str = STEP
) -> list[Span]:
    """Each step's window on the device: its activities' first start to last end (steps
    without an activity are left out)."""
    steps = step_spans(events, name)
    starts = [s.start for s in steps]
    launched = launch_times(events)
    windows: list[Span | None] = [None] * len(steps)
    for event in events:
        if _category(event) not in activities:
            continue
        span = _span(event)
        k = _step_of(launched.get(_correlation(event), span.start), steps, starts)
        if k is None:
            continue
        old = windows[k]
        windows[k] = (
            span if old is None else Span(min(old.start, span.start), max(old.end, span.end))
        )
    return [w for w in windows if w is not None]


def union_length(spans: Iterable[Span]) -> float:
    """Length covered by at least one span."""
    total, reach = 0.0, float("-inf")
    for span in sorted(spans, key=lambda s: s.start):
        if span.end <= reach:
            continue
        total += span.end - max(span.start, reach)
        reach = span.end
    return total


def gaps(windows: Sequence[Span]) -> float:
    """Time between one window's end and the next one's start, summed (overlaps count 0)."""
    return sum(max(b.start - a.end, 0.0) for a, b in itertools.pairwise(windows))


def trace_view(
    events: Sequence[dict[str, Any]], activities: Sequence[str], name: str = STEP
) -> dict[str, Any]:
    """The profiler's figures of one profiled epoch (see the module's docstring)."""
    events = _complete(events)
    windows = step_windows(events, activities, name)
    view: dict[str, Any] = {
        "steps": len(windows),
        "annotated_steps": len(step_spans(events, name)),
        "activities": sum(1 for e in events if _category(e) in activities),
        "between_steps_idle": None,
        "kernel_idle": None,
        "span_s": None,
    }
    if len(windows) < 2:
        return view
    first, last = windows[0].start, windows[-1].end
    span = last - first
    if span <= 0:
        return view
    inside = [
        Span(max(s.start, first), min(s.end, last))
        for e in events
        if _category(e) in activities
        for s in [_span(e)]
        if s.end > first and s.start < last
    ]
    view["between_steps_idle"] = gaps(windows) / span
    view["kernel_idle"] = 1.0 - union_length(inside) / span
    view["span_s"] = span / 1e6
    return view


def _ann(start: float, end: float) -> dict[str, Any]:
    """A step's annotation, for the doctest and the tests."""
    return {"ph": "X", "cat": ANNOTATION, "name": STEP, "ts": start, "dur": end - start}


def _op(start: float, end: float, cat: str = "cpu_op", correlation: int | None = None) -> Any:
    args = {"correlation": correlation} if correlation is not None else {}
    return {"ph": "X", "cat": cat, "name": "op", "ts": start, "dur": end - start, "args": args}
