"""A result against a baseline result: which of the baseline's configs to compare with, how
noisy each side was, and what differs between the two runs (machine, workload) that a reader
should know before trusting the comparison. Pure functions of records."""

from __future__ import annotations

from typing import Any

from loadertune.records import stats
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Result, Summary
from loadertune.records.stats import Spread
from loadertune.records.trial import Trial

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


def epoch_values(summary: Summary, *, later: bool = False) -> list[float]:
    """Each successful repeat's seconds per epoch of the planned job: an epoch, or where
    persistent workers start once in a job of several epochs, its share of the whole. With
    ``later``, what an epoch after the first costs (persistent workers running already): the
    epochs an online loader times inside its job."""
    epochs = max(summary.epochs, 1)
    if later:
        values = (_later_epoch_s(t) for t in summary.ok_trials)
    else:
        values = ((t.planned_s(epochs) or 0.0) / epochs for t in summary.ok_trials)
    return [v for v in values if v]


def _later_epoch_s(trial: Trial) -> float | None:
    epoch, startup, warm = trial.epoch_s, trial.startup_s, trial.warm_startup_s
    if epoch is None or not trial.config.persistent_workers or warm is None or startup is None:
        return epoch
    return epoch - startup + warm


def per_epoch(summary: Summary, *, later: bool = False) -> Spread | None:
    """Median and range of :func:`epoch_values`."""
    return stats.spread(epoch_values(summary, later=later))


def noise(summary: Summary, *, later: bool = False) -> float:
    """A side's noise: the interquartile range of its epochs over their median (0 for one run);
    a cold first run among five moves it little, where it would set the full range."""
    return stats.relative_iqr(epoch_values(summary, later=later))


def is_online(result: Result) -> bool:
    """Whether ``result`` is an online loader's: its epochs were timed inside the job."""
    return bool(result.settings.get("online"))


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
