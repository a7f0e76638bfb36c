"""Findings on pinned memory, from the copy probe (one batch to the GPU, pinned and unpinned:
:mod:`loadertune.engine.transfer`) and the trials with ``pin_memory`` on and off. Pure.

Pinning helps some pipelines and slows others (allennlp #4670; the PyTorch tutorial on
pin_memory and non_blocking measures ``pin_memory()`` then ``.to(non_blocking=True)`` up to 2x
slower than a plain ``.to()``): it pays a copy into page-locked memory to make the copy to the
GPU faster and, with ``non_blocking=True``, overlapped with the work queued before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadertune.records import units

if TYPE_CHECKING:
    from loadertune.records.result import Result, Summary

COPY_WORTH_SHARE = 0.05  # a pinned copy under 5% of a step alone: overlapping it gains little


def _finding(code: str, finding: str, fix: str, evidence: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "finding": finding, "fix": fix, "evidence": evidence}


def _copy(result: Result) -> dict[str, Any] | None:
    copy = (result.diagnosis or {}).get("copy")
    return copy if isinstance(copy, dict) and copy.get("plain_s") else None


def pin_costs_more(result: Result, best: Summary) -> dict[str, Any] | None:
    """Pinning a batch costs more than its faster copy saves, and the trials did not pick
    pinning anyway (the pin thread may hide its cost beside the step: the trials measure
    that whole, and where they picked it they win)."""
    copy = _copy(result)
    if copy is None or best.config.pin_memory or copy["pin_net_s"] <= 0:
        return None
    measured = _pin_trials(result, best.config.num_workers)
    return _finding(
        "pin_memory",
        f"Pinning a batch takes {units.seconds(copy['pin_s'])} and its copy to the GPU then "
        f"{units.seconds(copy['pinned_s'])}, against {units.seconds(copy['plain_s'])} for a "
        f"plain .to(): pinning costs {units.seconds(copy['pin_net_s'])} more per batch than "
        f"it saves{measured}.",
        "Keep pin_memory=False.",
        copy,
    )


def non_blocking(result: Result, best: Summary) -> dict[str, Any] | None:
    """A pinned batch's copy long enough to be worth overlapping, where batches are pinned
    (the pick) or pinning pays for itself (the probe)."""
    copy, step_s = _copy(result), _step_s(result)
    if copy is None or step_s is None:
        return None
    if not (best.config.pin_memory or copy["pin_net_s"] < 0):
        return None
    if copy["pinned_s"] < COPY_WORTH_SHARE * step_s:
        return None
    pinned = "" if best.config.pin_memory else " from pinned batches (pin_memory=True)"
    return _finding(
        "non_blocking",
        f"A pinned batch's copy to the GPU takes {units.seconds(copy['pinned_s'])}, "
        f"{units.percent(copy['pinned_s'] / step_s)} of a step alone "
        f"({units.seconds(step_s)}); with non_blocking=True the call returns after "
        f"{units.seconds(copy['pinned_enqueue_s'])} and the copy runs beside the work "
        "queued before it.",
        f"Copy in your step with batch.to('cuda', non_blocking=True){pinned}: a plain .to() "
        "from pinned memory waits for the copy, and non_blocking=True from unpinned memory "
        "gains nothing.",
        {**copy, "step_alone_s": step_s},
    )


def _step_s(result: Result) -> float | None:
    alone = (result.diagnosis or {}).get("step_alone") or {}
    seconds, batches = alone.get("seconds"), alone.get("batches")
    return seconds / batches if seconds and batches else None


def _pin_trials(result: Result, workers: int) -> str:
    """The trials' word on pinning at ``workers``, where both sides were measured."""
    by_pin = {
        s.config.pin_memory: s
        for s in result.summaries()
        if s.config.num_workers == workers and s.epoch_s is not None
    }
    on, off = by_pin.get(True), by_pin.get(False)
    if on is None or off is None or on.epoch_s is None or off.epoch_s is None:
        return ""
    return (
        f" (measured: {on.config.label()} takes {on.epoch_s.median / off.epoch_s.median:.3g}x "
        f"the time of {off.config.label()})"
    )
