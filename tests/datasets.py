"""Small datasets with a set behaviour, importable by worker processes under any start method.

Also used as CLI targets: ``tests/datasets.py:tiny`` and friends.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


class Rows(Dataset[torch.Tensor]):
    """``n`` rows of ``width`` floats; ``cost_s`` seconds of sleep per sample (storage latency)."""

    def __init__(self, n: int = 256, width: int = 8, cost_s: float = 0.0) -> None:
        self.n, self.width, self.cost_s = n, width, cost_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.cost_s:
            time.sleep(self.cost_s)
        return torch.full((self.width,), float(index))


class Busy(Rows):
    """Pure-Python CPU work per sample (about a millisecond)."""

    def __getitem__(self, index: int) -> torch.Tensor:
        total = 0
        for i in range(20000):
            total += i * i
        return torch.full((self.width,), float(total % 7))


class RaisesAt(Rows):
    """Raises ``ValueError`` at one index."""

    def __init__(self, bad: int = 7, n: int = 64) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad:
            raise ValueError(f"corrupt record {index}")
        return super().__getitem__(index)


class HangsAt(Rows):
    """Sleeps (practically forever) at one index."""

    def __init__(self, bad: int = 3, n: int = 64) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad:
            time.sleep(600)
        return super().__getitem__(index)


class DiesAt(Rows):
    """The process fetching ``bad`` exits at once, as if killed (only use with workers)."""

    def __init__(self, bad: int = 3, n: int = 64) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad:
            os._exit(3)
        return super().__getitem__(index)


class InterruptsAt(Rows):
    """Sends SIGINT to the main process when ``bad`` is fetched (Ctrl-C mid-trial)."""

    def __init__(self, main_pid: int, bad: int = 5, n: int = 64) -> None:
        super().__init__(n)
        self.bad, self.main_pid = bad, main_pid

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad:
            os.kill(self.main_pid, signal.SIGINT)
            time.sleep(5)
        return super().__getitem__(index)


class HoldsLambda(Rows):
    """Fine under fork; cannot be pickled for spawn or forkserver workers."""

    def __init__(self) -> None:
        super().__init__(32)
        self.transform = lambda x: x


class Stream(IterableDataset[torch.Tensor]):
    """An endless stream without ``__len__``."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        i = 0
        while True:
            yield torch.full((4,), float(i))
            i += 1


def failing_step(batch: Any) -> None:
    raise RuntimeError("loss is nan")


def sum_step(batch: torch.Tensor) -> float:
    return float(batch.sum())


tiny = Rows(256)
slow = Rows(64, cost_s=0.002)
bad = RaisesAt()
stream = Stream()
loader = DataLoader(Rows(100), batch_size=10, drop_last=True)
spawn_loader = DataLoader(Rows(32), batch_size=8, num_workers=1, multiprocessing_context="spawn")
not_data = 42


def make_rows() -> Rows:
    return Rows(128)


def bad_collate(samples: list[torch.Tensor]) -> torch.Tensor:
    raise TypeError("cannot collate these")


def bad_init(worker_id: int) -> None:
    raise OSError(f"worker {worker_id} cannot open the shard")


empty = Rows(0)
