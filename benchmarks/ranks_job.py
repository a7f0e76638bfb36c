"""One rank of a DDP-shaped job for ``benchmarks/ranks.py``, run under ``torchrun``.

As a target (``ranks_job.py:dataset``) it is the workload ``RANKS_KIND`` with ``RANKS_SAMPLES``
samples (pycpu with ``RANKS_ITERATIONS``, calibrated once by the driver, so every rank does the
same work). Run as a script it times a job: every rank builds ``DataLoader(dataset,
batch_size=64, sampler=DistributedSampler(dataset), num_workers=n, persistent_workers=n > 0)``,
waits for the others, runs ``--epochs`` epochs, waits again; rank 0 prints the job's seconds
(from the first barrier to the last: the slowest rank's pace), and each rank's own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads

BATCH_SIZE = 64


def _dataset() -> Any:
    kind = os.environ.get("RANKS_KIND", "pycpu")
    samples = int(os.environ.get("RANKS_SAMPLES", "3840"))
    if kind == "pycpu":
        return workloads.make(kind, samples, iterations=int(os.environ["RANKS_ITERATIONS"]))
    return workloads.make(kind, samples)


dataset = _dataset()


def main() -> None:
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    sampler: DistributedSampler[Any] = DistributedSampler(dataset, shuffle=True)
    n = args.workers
    loader = DataLoader(
        dataset, batch_size=BATCH_SIZE, sampler=sampler, num_workers=n, persistent_workers=n > 0
    )
    dist.barrier()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for _ in loader:
            pass
    del loader  # its workers stop inside the job's time
    own = time.perf_counter() - start
    dist.barrier()
    job = time.perf_counter() - start
    owns: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(owns, round(own, 3))
    if dist.get_rank() == 0:
        print(f"JOB {job:.4f} RANKS {' '.join(str(o) for o in owns)}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
