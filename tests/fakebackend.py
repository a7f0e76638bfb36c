"""A fake loader backend on a fake clock: batches made in this process, each costing a fixed
time that only the fake clock sees, so two loops driving the same data record the same times."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import BatchSampler, SequentialSampler

from loadertune.engine.backends import DeadWorker
from loadertune.engine.probe import IndexRecorder, ProbedBatch
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import MAIN_PROCESS


@dataclass
class FakeClock:
    """Stands still until told: ``advance`` is the only thing that moves it."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeLoader:
    rows: torch.Tensor
    batch_size: int
    indices: IndexRecorder
    clock: FakeClock
    make_s: float

    def __iter__(self) -> Iterator[ProbedBatch]:
        sampler = BatchSampler(SequentialSampler(range(len(self.rows))), self.batch_size, False)
        self.indices.inner = sampler
        for batch in self.indices:
            self.clock.advance(self.make_s)
            yield ProbedBatch(self.rows[batch], self.clock(), MAIN_PROCESS)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)


@dataclass
class FakeBackend:
    """Builds :class:`FakeLoader` s; counts its shutdowns."""

    rows: torch.Tensor
    batch_size: int
    clock: FakeClock
    make_s: float
    shutdowns: list[bool] = field(default_factory=list)

    def build(self, config: LoaderConfig, indices: IndexRecorder) -> Iterable[ProbedBatch]:
        return FakeLoader(self.rows, self.batch_size, indices, self.clock, self.make_s)

    def worker_pids(self, iterator: Iterator[ProbedBatch]) -> list[int]:
        return []

    def dead_workers(self, iterator: Iterator[ProbedBatch] | None) -> list[DeadWorker]:
        return []

    def shutdown(self, iterator: Iterator[ProbedBatch] | None, *, kill_first: bool) -> None:
        self.shutdowns.append(kill_first)


def fake_step(clock: FakeClock, step_s: float) -> Any:
    """A step that takes ``step_s`` on the fake clock."""

    def step(batch: Any) -> None:
        clock.advance(step_s)

    return step
