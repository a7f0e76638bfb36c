"""A training job that uses ``loadertune.DataLoader`` under ``torchrun`` (the tests run it).

``python -m torch.distributed.run --nproc-per-node 2 online_ranks_job.py SCENARIO OUT``: each
rank writes ``OUT/rank{r}.json`` with, per epoch, the sample indices its loop saw, the ones its
sampler gave, and the configs its stretches ran.

- ``even``: a DDP job over a ``DistributedSampler``, slow samples (workers pay), 3 epochs;
- ``uneven``: rank 0 has 25 batches an epoch, rank 1 19 (a short last one): DDP under ``Join``;
- ``rank0``: a second loader only rank 0 iterates (a validation loader), the others waiting in
  the job's own barrier;
- ``broken``: rank 1's data raises in its second epoch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.join import Join
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

import loadertune
from loadertune.engine import ranks as ranks_module

RANK = int(os.environ.get("RANK", "0"))


class Rows(Dataset[tuple[int, torch.Tensor]]):
    """Sample ``i`` is ``(i, row)``, after ``cost_s`` of sleep (a storage read)."""

    def __init__(self, n: int, cost_s: float, broken_at: int | None = None) -> None:
        self.n, self.cost_s, self.broken_at = n, cost_s, broken_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        if index == self.broken_at:
            raise ValueError(f"corrupt record {index} on rank {RANK}")
        time.sleep(self.cost_s)
        return index, torch.full((4,), float(index))


def train(loader: Any, epochs: int, sampler_of: Any) -> list[dict[str, Any]]:
    """The job's loop: DDP on a linear model, uneven inputs joined; what each epoch saw."""
    model = DistributedDataParallel(nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    log = []
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        seen: list[int] = []
        with Join([model]):
            for indices, rows in loader:
                seen += indices.tolist()
                optimizer.zero_grad()
                model(rows).sum().backward()
                optimizer.step()
        stretches = [t.config.label() for t in loader.stages[epoch]]
        log.append({"seen": seen, "expected": sampler_of(epoch), "stretches": stretches})
    return log


def _distributed(n: int, epoch: int) -> list[int]:
    sampler = DistributedSampler(range(n), shuffle=True, seed=0)
    sampler.set_epoch(epoch)
    return list(sampler)


def main(scenario: str, out: Path) -> None:
    dist.init_process_group("gloo")
    result: dict[str, Any] = {"rank": RANK}
    loader = None
    if scenario in ("even", "broken"):
        broken_at = _distributed(512, 1)[5] if scenario == "broken" and RANK == 1 else None
        data = Rows(512, 0.002, broken_at)
        loader = loadertune.DataLoader(
            data, batch_size=16, sampler=DistributedSampler(data, seed=0), epochs=3
        )
        result["epochs"] = train(loader, 3, lambda e: _distributed(512, e))
    elif scenario == "uneven":
        data = Rows(1024, 0.001)
        mine = list(range(RANK, 1024, 2))[: 400 - 100 * RANK]  # 25 and 19 batches of 16
        loader = loadertune.DataLoader(data, batch_size=16, sampler=mine, epochs=2)
        result["epochs"] = train(loader, 2, lambda e: mine)
    elif scenario == "rank0":
        ranks_module.ARRIVE_S = 3.0
        data = Rows(256, 0.0)
        if RANK == 0:
            alone = loadertune.DataLoader(data, batch_size=16, epochs=1)
            result["seen"] = [int(i) for indices, _ in alone for i in indices]
        dist.barrier()
    if loader is not None and loader.tuning is not None:
        pick = loader.tuning.pick
        result["pick"] = pick.label() if pick else None
    (out / f"rank{RANK}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
