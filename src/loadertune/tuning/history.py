"""What a search knows so far: every config measured, its figures and its failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loadertune.analysis.verdict import IDLE_CPU_SHARE, INPUT_MODERATELY
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Summary

INPUT_BOUND_WAIT = INPUT_MODERATELY  # the verdict's "moderately input-bound": >= 5% waiting


@dataclass(frozen=True)
class History:
    """Summaries of the configs tried, plus those rejected (memory) or skipped (cannot run)."""

    summaries: Sequence[Summary]
    rejected: dict[LoaderConfig, str] = field(default_factory=dict)

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
        pool = [s for s in self.usable() if not plain or is_plain(s.config)]
        return min(pool, key=planned_median, default=None)

    def plain_workers(self) -> list[int]:
        """Worker counts measured with every other knob at its default, ascending."""
        return sorted({s.config.num_workers for s in self.usable() if is_plain(s.config)})

    def rejected_workers(self) -> list[int]:
        return sorted(c.num_workers for c in self.rejected if is_plain(c))


def is_plain(config: LoaderConfig) -> bool:
    """Only num_workers differs from DataLoader's defaults."""
    return config == LoaderConfig(num_workers=config.num_workers)


def planned_median(summary: Summary) -> float:
    planned = summary.planned_s
    return planned.median if planned is not None else float("inf")


def median_of(summary: Summary, figure: str) -> float | None:
    value = summary.figure(figure)
    return value.median if value is not None else None


def input_bound(summary: Summary) -> bool:
    """The step waited for data at least :data:`INPUT_BOUND_WAIT` of the time."""
    wait = median_of(summary, "data_wait_fraction")
    return wait is not None and wait >= INPUT_BOUND_WAIT


def workers_idle(summary: Summary, usable_cpus: int) -> bool:
    """The main process and its workers kept fewer cores busy than the machine has."""
    busy = median_of(summary, "cpu_busy")
    return busy is not None and busy < IDLE_CPU_SHARE * usable_cpus
