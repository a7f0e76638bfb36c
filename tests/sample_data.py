"""Small datasets with a set behaviour, importable by worker processes under any start method.

Also used as CLI targets: ``tests/sample_data.py:tiny`` and friends.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


class Indexed(Dataset[tuple[int, torch.Tensor]]):
    """Sample ``i`` is ``(i, row)``; ``cost_s`` of sleep per sample (a storage read)."""

    def __init__(self, n: int, cost_s: float = 0.0, bad: int | None = None) -> None:
        self.n, self.cost_s, self.bad = n, cost_s, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        if index == self.bad:
            raise ValueError(f"corrupt record {index}")
        if self.cost_s:
            time.sleep(self.cost_s)
        return index, torch.full((4,), float(index))


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


class KilledAt(Rows):
    """The worker fetching ``bad`` kills itself with ``sig`` (SIGKILL: as the OOM killer does;
    SIGBUS: as a full /dev/shm does). Only use with workers."""

    def __init__(self, bad: int = 3, n: int = 64, sig: int = signal.SIGKILL) -> None:
        super().__init__(n)
        self.bad, self.sig = bad, sig

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self.bad:
            os.kill(os.getpid(), self.sig)
            time.sleep(5)  # the signal lands before this ends
        return super().__getitem__(index)


class CopyOnRead(Rows):
    """Holds ``n_items`` Python ints in a list; each sample sums the next ``touch`` of them, so
    refcount writes copy the list's pages into the worker that reads them (pytorch#13246).
    Over one sequential epoch every item is read once: the workers together grow by about the
    items' size (32 bytes each: 5 million items ~ 150 MiB), at a steady rate per batch."""

    def __init__(self, n_items: int, n: int, cost_s: float = 0.0) -> None:
        super().__init__(n, width=4, cost_s=cost_s)
        self.items = [i + 1000 for i in range(n_items)]  # above the small-int cache: objects
        self.touch = -(-n_items // n)

    def __getitem__(self, index: int) -> torch.Tensor:
        begin = index * self.touch
        total = sum(self.items[begin : begin + self.touch])
        time.sleep(self.cost_s)
        return torch.full((self.width,), float(total % 7))


HOARD: list[bytes] = []  # what Hoards keeps, per process
HOARD_CAP_BYTES = 512 * 2**20  # a safety stop if ours failed: a test never holds more per worker


class Hoards(Rows):
    """Each sample fetched in a worker keeps ``mib`` MiB (filled, so resident) in a module-level
    list, without bound but for :data:`HOARD_CAP_BYTES`; in the main process it keeps nothing.
    With ``hang_after`` the worker stops answering once it holds that many MiB."""

    def __init__(self, n: int = 2000, mib: int = 1, hang_after: int | None = None) -> None:
        super().__init__(n, width=4)
        self.mib, self.hang_after = mib, hang_after

    def __getitem__(self, index: int) -> torch.Tensor:
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None and len(HOARD) * self.mib * 2**20 < HOARD_CAP_BYTES:
            HOARD.append(b"\x01" * (self.mib * 2**20))
            if self.hang_after is not None and len(HOARD) * self.mib >= self.hang_after:
                time.sleep(600)
        return super().__getitem__(index)


class BigBatches(Rows):
    """Samples of ``kib`` KiB each: batches big enough to matter to /dev/shm."""

    def __init__(self, n: int = 64, kib: int = 256) -> None:
        super().__init__(n, width=kib * 256)


def make_copy_on_read() -> CopyOnRead:
    """A CLI target: 4 million items over 2000 samples, 2 ms each."""
    return CopyOnRead(4_000_000, 2000, cost_s=0.002)


killed = KilledAt(bad=3)
hoards = Hoards(4000)
sleepy = Rows(400, cost_s=0.01)  # ~4 s per epoch without workers: long enough to interrupt


def slow_step(batch: Any) -> None:
    """A training step of 10 ms: in-memory rows never keep it waiting."""
    time.sleep(0.01)
