"""What one stretch's batches say: its rate, its waits, what its workers and its CPU spent on
each batch, and whether it ran long enough to judge (the figures the online search reads)."""

from __future__ import annotations

import copy
import os
import statistics
from collections.abc import Callable

from loadertune.analysis.timeline import make_s
from loadertune.records.limits import bare_min_batches
from loadertune.records.result import Summary
from loadertune.records.trial import Trial

MIN_STRETCH_S = 0.3  # a stretch with a steady rate still runs this long past its first batch
SLOW_STRETCH_S = 0.25  # ... and a stretch of slow batches is judged after this, from a few
MIN_STRETCH_BATCHES = 3
QUICK_BASELINE_BATCH_S = 0.02  # a baseline (no workers) whose batch past the first took this
# long is judged from those two: a forked worker (10-40 ms to start) repays it within a few
# batches, and each further batch without workers is what the jump would have saved
FIRST_BATCH_JUMP_S = 0.1  # ... and one whose first batch took this long, from that one (storage
# at 4 ms a sample: 0.27 s a batch, and a second one cost 6% of a 3-epoch job at the best config;
# a first batch slow only for being cold is caught after the jump: see search.COLD_FACTOR)
CPU_TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # the kernel counts CPU time in these ticks (10 ms)


def steady_per_batch_s(trial: Trial) -> float:
    """Seconds per batch past the stretch's first batch (its startup left out)."""
    if trial.batches < 2:
        return float("inf")
    return (trial.step_end_s[-1] - trial.ready_s[0]) / (trial.batches - 1)


def per_batch_s(trial: Trial) -> float:
    """Seconds per batch over a stretch, startup included."""
    return trial.step_end_s[-1] / trial.batches if trial.batches else float("inf")


def wait_per_batch_s(summary: Summary) -> float:
    """The time the step waited for each batch (the most workers could take off the loop),
    median over the config's stretches, past each one's first batch (a baseline judged from
    its first batch: that one's, see :data:`FIRST_BATCH_JUMP_S`)."""
    waits = [
        sum(r - q for q, r in zip(t.request_s[1:], t.ready_s[1:], strict=True)) / (t.batches - 1)
        for t in summary.trials
        if t.batches > 1
    ]
    if not waits and not summary.config.num_workers:
        waits = [t.ready_s[0] - t.request_s[0] for t in summary.trials if t.batches]
    return sorted(waits)[len(waits) // 2] if waits else float("inf")


def worker_batch_s(trial: Trial) -> float | None:
    """The median time a worker took to make a batch (the timeline's load spans: from when it
    could start, its indices handed out and its previous batch done, to done; each worker's
    first batch, its start, left out). None before a worker made two."""
    made = make_s(trial)
    return statistics.median(made) if made else None


def step_per_batch_s(trial: Trial) -> float:
    """The step's median time per batch (ready to step end)."""
    steps = sorted(e - r for r, e in zip(trial.ready_s, trial.step_end_s, strict=True))
    return steps[len(steps) // 2] if steps else 0.0


def cpu_per_batch_s(trial: Trial, less_s: float = 0.0) -> float | None:
    """CPU seconds per batch between the stretch's first and last CPU reading (``less_s``
    taken off the total first)."""
    if len(trial.cpu) < 2 or not trial.batches:
        return None
    return max(trial.cpu[-1][1] - trial.cpu[0][1] - less_s, 0.0) / trial.batches


def enough(stage: Trial, quick: bool) -> bool:
    """A stretch long enough to judge: a steady rate's batches and :data:`MIN_STRETCH_S`, or
    (slow batches) a few of them and :data:`SLOW_STRETCH_S`, or (a ``quick`` baseline of slow
    batches, see :data:`FIRST_BATCH_JUMP_S` and :data:`QUICK_BASELINE_BATCH_S`) one or two."""
    if not stage.ready_s:
        return False
    steady_s = stage.step_end_s[-1] - stage.ready_s[0] if stage.step_end_s else 0.0
    if quick and stage.batches == 1:
        return stage.ready_s[0] - stage.request_s[0] >= FIRST_BATCH_JUMP_S
    if quick and stage.batches == 2:
        return steady_s >= QUICK_BASELINE_BATCH_S
    if stage.batches >= bare_min_batches(stage.config) and steady_s >= MIN_STRETCH_S:
        return True
    return stage.batches >= MIN_STRETCH_BATCHES and steady_s >= SLOW_STRETCH_S


def snapshot(stage: Trial, cpu_now: Callable[[], float]) -> Trial:
    """A copy of the live stretch ``stage`` as it stands, trimmed, its CPU read at its last
    step's end (the live one goes on recording). A snapshot's snapshot is a plain copy: one
    made on another rank keeps that rank's CPU reading."""
    kept = copy.deepcopy(stage)
    if kept.step_end_s and not _read_at_end(kept):
        kept.cpu.append((kept.step_end_s[-1], cpu_now()))
    kept.trim()
    kept.round_raw()
    return kept


def _read_at_end(trial: Trial) -> bool:
    return bool(trial.cpu) and trial.cpu[-1][0] >= trial.step_end_s[-1] - 1e-6
