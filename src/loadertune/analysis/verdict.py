"""What limits a config: input, compute, startup or transfer, decided from its raw times.

- ``input``: the step waits for data. Degrees as the TensorFlow profiler gives them: ``highly``
  at >= 20% of the step loop's time spent waiting, ``moderately`` at >= 5%. Where the step ran
  on a GPU, the wait is the GPU's: its idle share between steps (CUDA events), since an
  asynchronous step's CPU time says little about whether the GPU waited for data.
- ``compute``: the step (almost) never waits; faster loading cannot help.
- ``startup``: so much of the run passes before the first batch that starting the workers
  dominates.
- ``transfer``: the step waits, but mostly for batches that were already made and are in
  transit from the workers (pickling, shared memory, the queue), and passing a batch takes at
  least half as long as making it. (A short hand-over next to a long make, as when saturated
  CPUs delay the hand-over of slow batches, is the loading's cost, so ``input``.)

Pure functions of trials; the figures behind every verdict travel with it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loadertune.analysis import timeline
from loadertune.records import stats
from loadertune.records.result import Summary
from loadertune.records.trial import Trial

INPUT_HIGHLY = 0.20  # TensorFlow profiler: "HIGHLY input-bound" at >= 20% of step time waiting
INPUT_MODERATELY = 0.05  # ... "MODERATELY" at >= 5%; below that the wait is harness-level noise
STARTUP_SHARE = 0.5  # startup-bound when at least half the planned run passes before batch 1
TRANSIT_SHARE = 0.5  # transfer-bound when at least half the waiting is for batches already made
TRANSIT_OVER_MAKE = 0.5  # ... and passing one takes at least half as long as a worker making it
IDLE_CPU_SHARE = 0.8  # loader and step keep fewer CPUs busy than this share: workers wait (I/O)

INPUT, COMPUTE, STARTUP, TRANSFER = "input", "compute", "startup", "transfer"


@dataclass(frozen=True)
class Bottleneck:
    """The verdict on one config (or one trial) and the figures it rests on (medians)."""

    kind: str
    degree: str | None  # "highly" / "moderately" for input and transfer
    wait_fraction: float | None
    startup_share: float | None
    transit_share: float | None
    transit_s: float | None = None  # mean per batch, waiting for batches already made
    make_s: float | None = None  # median time a worker takes to make a batch
    gpu_idle_fraction: float | None = None  # on a GPU: its idle share between steps

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.degree})" if self.degree else self.kind

    @property
    def waiting(self) -> float | None:
        """The wait the verdict rests on: the GPU's where it was measured, else the loop's."""
        return self.gpu_idle_fraction if self.gpu_idle_fraction is not None else self.wait_fraction

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.gpu_idle_fraction is None:  # a CPU verdict reads as it did
            del data["gpu_idle_fraction"]
        return data


def trial_bottleneck(trial: Trial, epochs: int = 1) -> Bottleneck | None:
    """The verdict on one successful trial; None for a failed one or too few batches."""
    return config_bottleneck([trial], epochs)


def config_bottleneck(trials: Sequence[Trial], epochs: int = 1) -> Bottleneck | None:
    """The verdict on a config from the medians of its successful repeats."""
    ok = [t for t in trials if t.ok and t.batches > 0]
    if not ok:
        return None
    wait = _median([t.data_wait_fraction for t in ok])
    gpu = _median([t.gpu_idle_fraction for t in ok])
    waiting = gpu if gpu is not None else wait
    startup = _median([startup_share(t, epochs) for t in ok])
    workers = ok[0].config.num_workers
    transit = _median([stats.transit_share(t.times) for t in ok]) if workers else None
    transit_s = _median([stats.transit_per_batch_s(t.times) for t in ok]) if workers else None
    make = _median([_median(timeline.make_s(t)) for t in ok]) if workers else None
    passing = _passing_dominates(transit, transit_s, make)
    kind = _kind(workers, waiting, startup, passing)
    degree = _degree(waiting) if kind in (INPUT, TRANSFER) else None
    return Bottleneck(kind, degree, wait, startup, transit, transit_s, make, gpu)


def summary_bottleneck(summary: Summary) -> Bottleneck | None:
    """What limits a config (input, compute, startup or transfer), from its repeats."""
    return config_bottleneck(summary.trials, summary.epochs)


def _passing_dominates(share: float | None, transit_s: float | None, make: float | None) -> bool:
    if share is None or share < TRANSIT_SHARE or transit_s is None:
        return False
    return make is None or transit_s >= TRANSIT_OVER_MAKE * make


def startup_share(trial: Trial, epochs: int = 1) -> float | None:
    """Share of the planned run spent before first batches (persistent workers start once)."""
    planned, first = trial.planned_s(epochs), trial.startup_s
    if planned is None or first is None or planned <= 0:
        return None
    warm = trial.warm_startup_s if trial.config.persistent_workers else None
    total = first + (warm if warm is not None else first) * (epochs - 1)
    return min(total / planned, 1.0)


def _kind(workers: int, wait: float | None, startup: float | None, transit: float | None) -> str:
    if workers and startup is not None and startup >= STARTUP_SHARE:
        return STARTUP
    if wait is None or wait < INPUT_MODERATELY:
        return COMPUTE
    if workers and transit is not None and transit >= TRANSIT_SHARE:
        return TRANSFER
    return INPUT


def _degree(wait: float | None) -> str | None:
    if wait is None or wait < INPUT_MODERATELY:
        return None
    return "highly" if wait >= INPUT_HIGHLY else "moderately"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
