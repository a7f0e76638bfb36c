"""Search strategies: objects with ``propose(history) -> LoaderConfig | None``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from loadertune.records.config import LoaderConfig
from loadertune.tuning.history import History


class Strategy(Protocol):
    """Proposes the next config to measure from what was measured, or None when done."""

    name: str

    def propose(self, history: History) -> LoaderConfig | None: ...


@dataclass
class Grid:
    """The reference: every config in the list, in order."""

    configs: Sequence[LoaderConfig]
    name: str = "grid"

    def propose(self, history: History) -> LoaderConfig | None:
        return next((c for c in self.configs if c not in history.tried), None)


def worker_grid(max_workers: int) -> list[int]:
    """0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ... up to ``max_workers``: even steps on a log scale."""
    counts, n = [0, 1, 2, 3], 4
    while n <= max_workers:
        counts += [n, n * 3 // 2]
        n *= 2
    return sorted({c for c in counts if c <= max_workers})
