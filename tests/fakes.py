"""Trials and results made from synthetic raw samples: no clock, no process."""

from __future__ import annotations

from typing import Any

from loadertune import LoaderConfig, Result, Trial, TrialError

MACHINE = {"cpus": {"usable": 2, "how": "affinity (2 of 2 logical CPUs)"}, "torch_version": "x"}
WORKLOAD = {
    "name": "fake",
    "batch_size": 8,
    "epoch_batches": 20,
    "epochs": 1,
    "step": "train_step",
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


class Measured(Trial):
    """A trial whose figures are given, not derived: for testing searches and picks."""

    def __init__(
        self,
        config: LoaderConfig,
        epoch_s: float,
        wait: float = 0.5,
        *,
        cpu_busy: float = 1.0,
        memory: int = 2**28,
        repeat: int = 0,
        batches: int = 10,
    ) -> None:
        super().__init__(
            config=config, repeat=repeat, epoch_batches=batches, complete=True, end_s=epoch_s
        )
        self._figures = (epoch_s, wait, cpu_busy, memory)

    @property
    def epoch_s(self) -> float:
        return self._figures[0]

    @property
    def data_wait_fraction(self) -> float:
        return self._figures[1]

    @property
    def cpu_busy(self) -> float:
        return self._figures[2]

    @property
    def peak_memory_bytes(self) -> int:
        return self._figures[3]


def summaries(*trials: Trial) -> list:  # type: ignore[type-arg]
    return result(*trials).summaries()


TIMED_BATCHES = 20


def timed(
    workers: int,
    wait_s: float,
    step_s: float,
    *,
    startup_s: float = 0.001,
    made_before_s: float = 0.0,
    persistent: bool = False,
    warm_s: float | None = None,
    repeat: int = 0,
) -> Trial:
    """A whole epoch whose every batch waits ``wait_s`` then steps ``step_s``. Each batch is
    finished by its producer ``made_before_s`` before it is requested (0: as it arrives)."""
    request, ready, step_end, done = [], [], [], []
    t = 0.0
    for k in range(TIMED_BATCHES):
        request.append(t)
        arrive = t + (startup_s if k == 0 else wait_s)
        ready.append(arrive)
        done.append(t - made_before_s if made_before_s and k else arrive)
        t = arrive + step_s
        step_end.append(t)
    trial = Trial(
        config=LoaderConfig(workers, persistent_workers=persistent),
        repeat=repeat,
        epoch_batches=TIMED_BATCHES,
        complete=True,
        end_s=t,
        warm_startup_s=warm_s,
        request_s=request,
        ready_s=ready,
        step_end_s=step_end,
        done_s=done,
        handed_s=[d - 0.0005 for d in done] if workers else [],  # each made in 0.5 ms
        worker_id=[k % workers if workers else -1 for k in range(TIMED_BATCHES)],
        n_samples=[8] * TIMED_BATCHES,
        cpu=[(0.0, 0.0), (t, t)],
    )
    trial.round_raw()  # as a run records them, so a JSON round trip gives the same figures
    return trial


def classic_like(diagnosis: dict[str, Any] | None = None, epochs: int = 1) -> Result:
    """w=0 fast and input-bound; w=2 slower, transfer-bound (batches wait, already made)."""
    trials = [timed(0, wait_s=0.001, step_s=0.001, repeat=r) for r in range(3)]
    trials += [
        timed(2, wait_s=0.004, step_s=0.001, startup_s=0.04, made_before_s=0.01, repeat=r)
        for r in range(3)
    ]
    workload = {**WORKLOAD, "epochs": epochs, "epoch_batches": TIMED_BATCHES}
    return Result(machine=MACHINE, workload=workload, trials=trials, diagnosis=diagnosis)
