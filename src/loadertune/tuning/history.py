"""What a search knows so far: every config measured, its figures and its failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadertune.analysis.verdict import IDLE_CPU_SHARE, INPUT_MODERATELY
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Summary

INPUT_BOUND_WAIT = INPUT_MODERATELY  # the verdict's "moderately input-bound": >= 5% waiting


@dataclass(frozen=True)
class History:
    """Summaries of the configs tried, plus those rejected (memory) or skipped (cannot run)."""

    summaries: Sequence[Summary]
    rejected: dict[LoaderConfig, str] = field(default_factory=dict)
    context: str | None = None  # the start method of plain configs with workers (None: default)

    @property
    def tried(self) -> set[LoaderConfig]:
        return {s.config for s in self.summaries} | set(self.rejected)

    def usable(self) -> list[Summary]:
        """Configs that ran and are within the constraints."""
        return [
            s for s in self.summaries if s.planned_s is not None and s.config not in self.rejected
        ]

    def best(self, plain: bool = False) -> Summary | None:
        """Lowest median planned time; ``plain``: only configs that vary num_workers alone."""
        pool = [s for s in self.usable() if not plain or is_plain(s.config, self.context)]
        return min(pool, key=planned_median, default=None)

    def plain_workers(self) -> list[int]:
        """Worker counts measured with every other knob at its default, ascending."""
        usable = self.usable()
        return sorted({s.config.num_workers for s in usable if is_plain(s.config, self.context)})

    def rejected_workers(self) -> list[int]:
        return sorted(c.num_workers for c in self.rejected if is_plain(c, self.context))


def plain(workers: int, context: str | None = None, **knobs: Any) -> LoaderConfig:
    """``workers`` with ``knobs``, its workers started by ``context`` (None: the default)."""
    method = context if workers else None
    return LoaderConfig(workers, multiprocessing_context=method, **knobs)


def is_plain(config: LoaderConfig, context: str | None = None) -> bool:
    """Only num_workers differs from DataLoader's defaults (the start method ``context``)."""
    return config == plain(config.num_workers, context)


def planned_median(summary: Summary) -> float:
    planned = summary.planned_s
    return planned.median if planned is not None else float("inf")


def median_of(summary: Summary, figure: str) -> float | None:
    value = summary.figure(figure)
    return value.median if value is not None else None


def input_bound(summary: Summary) -> bool:
    """The step waited for data at least :data:`INPUT_BOUND_WAIT` of the time: on a GPU,
    the GPU sat idle between steps that long (as the verdict has it), else the loop waited."""
    wait = median_of(summary, "gpu_idle_fraction")
    if wait is None:
        wait = median_of(summary, "data_wait_fraction")
    return wait is not None and wait >= INPUT_BOUND_WAIT


def workers_idle(summary: Summary, usable_cpus: int) -> bool:
    """The main process and its workers kept fewer cores busy than the machine has."""
    busy = median_of(summary, "cpu_busy")
    return busy is not None and busy < IDLE_CPU_SHARE * usable_cpus
