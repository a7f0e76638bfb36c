"""How many workers a measured config suggests: a small model of the loader fitted to one trial.

tf.data's autotuner models its pipeline instead of trying every setting; this is the same idea
for one DataLoader, fitted to what a trial at ``n`` workers measured:

- each worker takes ``make_s`` to make a batch, so ``n`` workers deliver ``n / make_s`` batches/s;
- the main loop's own work (the step) caps the rate at ``1 / busy_s``, and the CPUs at
  ``cpus / cpu_s`` (CPU seconds per batch, workers and main process together); past
  ``make_s x`` that cap more workers only wait;
- every worker costs ``per_worker_s`` per epoch (its start), against the
  ``batches x make_s / n`` seconds the workers spend making, so an epoch lasts about
  ``n x per_worker_s + batches x make_s / n``: least at ``sqrt(batches x make_s / per_worker_s)``.

The suggestion is the smaller of the two counts. It is a guess to measure next, never a result:
the model knows nothing of memory, of workers crowding the CPUs, or of how make time grows with
them. Pure: reads only a Summary's trials.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from loadertune.analysis import timeline
from loadertune.records.result import Summary
from loadertune.records.trial import Trial

MIN_PER_WORKER_S = 0.001  # no worker starts in under 1 ms: bounds the square root


@dataclass(frozen=True)
class LoaderFit:
    """Per-batch figures of one config (medians over its repeats), seconds."""

    workers: int
    make_s: float  # a worker making one batch
    busy_s: float  # the main loop's own time per batch (the step)
    cpu_s: float  # CPU seconds per batch, all processes
    per_worker_s: float  # one worker's share of the time to the first batch, beyond making it
    batches: int  # batches per epoch

    def saturating_workers(self, cpus: int) -> float:
        """Workers beyond which the step or the CPUs, not the workers, set the pace."""
        caps = [1 / self.busy_s if self.busy_s > 0 else math.inf]
        caps.append(cpus / self.cpu_s if self.cpu_s > 0 else math.inf)
        return self.make_s * min(caps)

    def startup_balanced_workers(self) -> float:
        """Workers at which one more costs as much startup as it saves making."""
        return math.sqrt(self.batches * self.make_s / max(self.per_worker_s, MIN_PER_WORKER_S))

    def suggested_workers(self, cpus: int) -> int:
        return max(1, round(min(self.saturating_workers(cpus), self.startup_balanced_workers())))


def fit(summary: Summary) -> LoaderFit | None:
    """The model's figures for a config with workers (medians over its repeats), or None
    where no trial has them."""
    n = summary.config.num_workers
    fits = [f for f in (_trial_fit(t, n) for t in summary.ok_trials) if f is not None] if n else []
    if not fits:
        return None
    return LoaderFit(
        workers=n,
        make_s=statistics.median(f.make_s for f in fits),
        busy_s=statistics.median(f.busy_s for f in fits),
        cpu_s=statistics.median(f.cpu_s for f in fits),
        per_worker_s=statistics.median(f.per_worker_s for f in fits),
        batches=fits[0].batches,
    )


def suggest_workers(summary: Summary, cpus: int) -> int | None:
    """The worker count the model fitted to ``summary`` points to, or None without a fit."""
    fitted = fit(summary)
    return fitted.suggested_workers(cpus) if fitted is not None else None


def _trial_fit(trial: Trial, n: int) -> LoaderFit | None:
    makes, rate, startup = timeline.make_s(trial), trial.rate, trial.startup_s
    if not makes or rate is None or startup is None or trial.epoch_batches is None:
        return None
    make = statistics.median(makes)
    first = rate.first_batch
    busy = [e - r for r, e in zip(trial.ready_s[first:], trial.step_end_s[first:], strict=False)]
    return LoaderFit(
        workers=n,
        make_s=make,
        busy_s=statistics.median(busy) if busy else 0.0,
        cpu_s=(trial.cpu_busy or 0.0) / rate.batches_per_s,
        # not the join of a cut trial: its workers were mid-batch (a whole epoch's join, of
        # idle workers, is cheap)
        per_worker_s=max(startup - make, 0.0) / n,
        batches=trial.epoch_batches,
    )
