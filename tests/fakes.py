"""Trials and results made from synthetic raw samples: no clock, no process."""

from __future__ import annotations

from loadertune import LoaderConfig, Result, Trial, TrialError

MACHINE = {"cpus": {"usable": 2, "how": "affinity (2 of 2 logical CPUs)"}, "torch_version": "x"}
WORKLOAD = {
    "name": "fake",
    "batch_size": 8,
    "epoch_batches": 20,
    "epochs": 1,
    "loader_kwargs": {"batch_size": 8, "shuffle": True, "drop_last": False},
}


def trial(workers: int, batch_s: float, startup_s: float = 0.01, repeat: int = 0) -> Trial:
    """A complete 20-batch epoch: each batch takes ``batch_s`` after ``startup_s``."""
    ready = [round(startup_s + i * batch_s, 6) for i in range(20)]
    step_end = [round(r + batch_s / 2, 6) for r in ready]
    request = [0.0, *step_end[:-1]]
    return Trial(
        config=LoaderConfig(workers),
        repeat=repeat,
        epoch_batches=20,
        complete=True,
        end_s=round(step_end[-1] + 0.001, 6),
        request_s=request,
        ready_s=ready,
        step_end_s=step_end,
        done_s=[round(r - 0.001, 6) for r in ready],
        worker_id=[i % max(workers, 1) if workers else -1 for i in range(20)],
        n_samples=[8] * 20,
        memory=[(0.0, 100 * 2**20), (0.1, (100 + 50 * workers) * 2**20)],
    )


def failed(workers: int, message: str = "ValueError: bad row 3") -> Trial:
    return Trial(
        config=LoaderConfig(workers),
        epoch_batches=20,
        status="failed",
        error=TrialError("exception", message, index=3, batch=0),
    )


def result(*trials: Trial, repeats: int = 1) -> Result:
    return Result(
        machine=MACHINE, workload=WORKLOAD, settings={"repeats": repeats}, trials=list(trials)
    )
