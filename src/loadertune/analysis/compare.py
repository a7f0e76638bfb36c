"""A result against a baseline result: which of the baseline's configs to compare with, how
noisy each side was, and what differs between the two runs (machine, workload) that a reader
should know before trusting the comparison. Pure functions of records."""

from __future__ import annotations

from typing import Any

from loadertune.records.config import LoaderConfig
from loadertune.records.result import Result, Summary
from loadertune.records.stats import Spread

# (what the machine facts hold, how a difference is named)
_MACHINE_FACTS = (
    (("cpus", "usable"), "usable CPUs"),
    (("cpus", "logical"), "logical CPUs"),
    (("torch_version",), "torch"),
    (("python_version",), "Python"),
    (("cuda_available",), "CUDA"),
)
_WORKLOAD_FACTS = (
    ("samples", "samples"),
    ("batch_size", "batch size"),
    ("epoch_batches", "batches per epoch"),
    ("step", "step"),
)


def baseline_summary(baseline: Result, config: LoaderConfig) -> Summary | None:
    """The baseline's summary of ``config`` where it measured that config, else its best (the
    pick of a search, the fastest of a bench): the same config compares like with like."""
    same = next((s for s in baseline.summaries() if s.config == config and not s.failed), None)
    return same or baseline.best


def noise(spread: Spread | None) -> float:
    """A side's noise: the range of its repeats over their median (0 for one run)."""
    return spread.rel if spread is not None and spread.n > 1 else 0.0


def machine_differences(measured: Result, baseline: Result) -> list[str]:
    """``['usable CPUs: 4 there, 2 here', 'torch: 2.12.0 there, 2.13.0 here']``; facts one
    side did not record are not differences."""
    out = []
    for keys, name in _MACHINE_FACTS:
        here, there = _dig(measured.machine, keys), _dig(baseline.machine, keys)
        if here is not None and there is not None and here != there:
            out.append(f"{name}: {there} there, {here} here")
    return out


def workload_differences(measured: Result, baseline: Result) -> list[str]:
    """The same form for the workload: another epoch length or batch size changes epoch time."""
    out = []
    for key, name in _WORKLOAD_FACTS:
        here, there = measured.workload.get(key), baseline.workload.get(key)
        if here is not None and there is not None and here != there:
            out.append(f"{name}: {there} there, {here} here")
    return out


def _dig(facts: dict[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = facts
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
