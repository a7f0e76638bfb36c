"""Targets for the tests that run ``loadertune`` under ``torchrun`` (each rank imports this)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

RANK = int(os.environ.get("RANK", "0"))


class Rows(Dataset[tuple[int, torch.Tensor]]):
    """Sample ``i`` is ``(i, row)``, after ``cost_s`` of sleep (a storage read)."""

    def __init__(self, n: int, cost_s: float = 0.0005) -> None:
        self.n, self.cost_s = n, cost_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        time.sleep(self.cost_s)
        return index, torch.full((4,), float(index))


class BrokenOnRankOne(Rows):
    """Rank 1's copy of the data has a corrupt record; rank 0's is whole."""

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        if RANK == 1 and index % 50 == 7:
            raise ValueError(f"corrupt record {index} on rank 1")
        return super().__getitem__(index)


rows = Rows(512)
loader = DataLoader(rows, batch_size=16, shuffle=True)  # not distributed: every rank reads all
broken = BrokenOnRankOne(512)


def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    batch[1].sum()


def dies_on_rank_one(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Rank 1's process dies at its 20th step (a segfault, an OOM kill)."""
    dies_on_rank_one.calls = getattr(dies_on_rank_one, "calls", 0) + 1  # type: ignore[attr-defined]
    if RANK == 1 and dies_on_rank_one.calls == 20:  # type: ignore[attr-defined]
        os._exit(3)


def library_main(out: str) -> None:
    """A job's own script: its process group, then ``loadertune.bench`` on every rank."""
    import torch.distributed as dist

    import loadertune
    from loadertune import LoaderConfig, Workload

    dist.init_process_group("gloo")
    try:
        result = loadertune.bench(
            Workload(rows, step=step, batch_size=16),
            [LoaderConfig(0), LoaderConfig(2)],
            repeats=1,
            diagnose=False,
            warm_up=False,
        )
        best = result.best
        label = best.config.label() if best else "-"
        facts = result.distributed or {}
        line = f"{len(result.trials)} {label} {facts.get('world_size')}\n"
        (Path(out) / f"rank{dist.get_rank()}.txt").write_text(line)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    library_main(sys.argv[1])
