"""The default search: measures the anchors, then goes where each trial's figures point.

Workers first. While the best count measured so far is also the highest and the step still
waits for data, it looks higher: where a model fitted to that trial points (``model.py``: the
workers' make time against the step, the CPUs and each worker's startup), which for data that
waits on storage lies far above the core count. When the model says the best count is already
enough it looks a quarter higher, to see the curve turn. Without a model (a trial without
the stamps) it steps up four times when the workers leave CPUs idle, twice when CPUs are
saturated. It stops as soon as a step up does not win. When the step no longer waits it looks
lower, for a cheaper count within noise. Gaps around the best are then halved, upward first
while the step waits. Counts are taken in whole rounds of an epoch's batches (a short epoch
lasts its busiest worker's share). Last, at the best count: persistent workers (when several
epochs are planned, and at a higher count whose startup, paid once, would then win), a deeper
prefetch and unordered delivery (when the step still waits), another start method, pinned
memory (CUDA; at 0 workers too, where the main process pins), and Lightning's rule (CPUs - 1)
for the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from loadertune.records.config import LoaderConfig
from loadertune.records.result import Summary
from loadertune.tuning.history import History, input_bound, plain, workers_idle
from loadertune.tuning.model import suggest_workers

REFINE_GAP = 0.25  # stop halving once the gap to a neighbour is under 25% of the best count
CLIMB_IDLE, CLIMB_BUSY = 4, 2  # without a model, step up by these with CPUs idle / saturated
CLIMB_CHECK = 1 + REFINE_GAP  # once the model says the best count is enough, look just above
DEEP_PREFETCH = 4


@dataclass
class Adaptive:
    """``usable_cpus`` from affinity and quota; ``max_workers`` caps the search; ``epochs``
    planned (persistent workers only matter past one); ``baseline`` is measured first."""

    usable_cpus: int
    max_workers: int
    epochs: int = 1
    baseline: LoaderConfig = field(default_factory=LoaderConfig)
    unordered_ok: bool = True  # in_order=False needs torch >= 2.6
    start_methods: tuple[str, ...] = ("forkserver",)
    cuda: bool = False
    context: str | None = None  # the start method of every config with workers: set where
    # fork is not tried (engine/forked.py); None: the platform's
    model: Callable[[Summary, int], int | None] = suggest_workers  # see tuning/model.py
    name: str = "adaptive"

    def propose(self, history: History) -> LoaderConfig | None:
        history = replace(history, context=self.context)
        tried = history.tried
        return next((c for c in self._wanted(history) if c not in tried), None)

    def anchors(self) -> list[LoaderConfig]:
        """The baseline, no workers, and the common rule of one worker per usable CPU."""
        counts = [0, self.usable_cpus]
        anchors = [self._config(n) for n in counts if 0 <= n <= self.max_workers]
        return list(dict.fromkeys([self.baseline, *anchors]))

    def lightning(self) -> LoaderConfig | None:
        """Lightning's suggestion, ``usable CPUs - 1``: measured last, for the comparison."""
        n = self.usable_cpus - 1
        return self._config(n) if 0 <= n <= self.max_workers else None

    def _config(self, workers: int, **knobs: Any) -> LoaderConfig:
        return plain(workers, self.context, **knobs)

    def _wanted(self, history: History) -> Iterator[LoaderConfig]:
        yield from self.anchors()
        yield from self._workers(history)
        best = history.best(plain=True)
        if best is not None and best.config.num_workers > 0 and self._workers_settled(history):
            yield from self._knobs(history, best.config.num_workers)
        elif best is not None and self.cuda and self._workers_settled(history):
            yield self._config(0, pin_memory=True)  # the main process pins: it can still win
        rule = self.lightning()
        if rule is not None:
            yield rule

    def _workers(self, history: History) -> Iterator[LoaderConfig]:
        best = history.best(plain=True)
        if best is None:
            return
        w, measured = best.config.num_workers, history.plain_workers()
        if w == 0:
            if self.max_workers >= 1:
                yield self._config(1)
            yield from self._past_one(history)
            return
        at_top = w == max(measured) and self._room_above(history, w)
        if at_top and input_bound(best):
            yield self._config(min(self._climb(best), self._ceiling(history)))
        if not input_bound(best) and w > 1:
            yield self._config(w // 2)
        points = _midpoints(w, measured, _epoch_batches(best))
        # the side loading speed points to first: above while the step still waits (a
        # U-shaped curve's bottom can lie between w and a climb that overshot), below when
        # it no longer does
        yield from (self._config(n) for n in (points[::-1] if input_bound(best) else points))

    def _past_one(self, history: History) -> Iterator[LoaderConfig]:
        """With one usable CPU (a container's quota, or a local rank's share under torchrun)
        the anchors measure no more than one worker, which cannot beat loading in the main
        process: where that worker still left the step waiting and the CPU idle, climb from
        it as from a best
        (storage waits want many workers whatever the CPUs; 2 ranks on 2 cores stopped at w=0,
        4.5x slower than w=8 per rank)."""
        one = next((s for s in history.summaries if s.config == self._config(1)), None)
        if self.usable_cpus > 1 or one is None or not input_bound(one):
            return
        if not workers_idle(one, self.usable_cpus):
            return
        if self._room_above(history, 1):
            yield self._config(min(self._climb(one), self._ceiling(history)))

    def _climb(self, best: Summary) -> int:
        """Where to look above the best count, which is also the highest measured: where the
        model fitted to it points, when that is well above; just above, when the model says
        it is enough (to see it stop helping); else by a fixed factor. Each in whole rounds
        of the epoch's batches (see :func:`fewest_for_rounds`)."""
        w, batches = best.config.num_workers, _epoch_batches(best)
        suggested = self.model(best, self.usable_cpus)
        if suggested is not None:
            suggested = fewest_for_rounds(batches, suggested)
        if suggested is not None and suggested > w * (1 + REFINE_GAP):
            return suggested
        if suggested is not None:
            return max(w + 1, math.ceil(CLIMB_CHECK * w), fewer_rounds(batches, w))
        factor = CLIMB_IDLE if workers_idle(best, self.usable_cpus) else CLIMB_BUSY
        return fewest_for_rounds(batches, factor * w)

    def _room_above(self, history: History, w: int) -> bool:
        return w < self._ceiling(history)

    def _ceiling(self, history: History) -> int:
        """No more workers than allowed, nor as many as a count rejected for memory."""
        rejected = [n - 1 for n in history.rejected_workers()]
        return min([self.max_workers, *rejected])

    def _workers_settled(self, history: History) -> bool:
        return all(c in history.tried for c in self._workers(history))

    def _kept_rivals(self, history: History, w: int) -> Iterator[LoaderConfig]:
        """Higher counts that lost to ``w`` on a start every epoch, kept alive where their
        startup paid once would beat ``w`` kept alive (see :func:`startup_once_s`): the job
        runs persistent workers, and more workers pay more startup (4 ranks on 2 cores,
        storage: w=8 lost to w=4 started each epoch, and ran 2 persistent epochs 11% faster)."""
        kept = next((s for s in history.usable() if s.config == self._kept(w)), None)
        planned = [t.planned_s(self.epochs) for t in kept.ok_trials] if kept else []
        measured = sorted(p for p in planned if p is not None)
        if not measured:
            return
        for summary in history.usable():
            n = summary.config.num_workers
            if summary.config != self._config(n) or n <= w:
                continue
            estimate = startup_once_s(summary, self.epochs)
            if estimate is not None and estimate < measured[len(measured) // 2]:
                yield self._kept(n)

    def _kept(self, workers: int) -> LoaderConfig:
        return self._config(workers, persistent_workers=True)

    def _knobs(self, history: History, w: int) -> Iterator[LoaderConfig]:
        best = history.best(plain=True)
        waiting = best is not None and input_bound(best)
        if self.epochs > 1:
            yield self._kept(w)
            yield from self._kept_rivals(history, w)
        if waiting:
            yield self._config(w, prefetch_factor=DEEP_PREFETCH)
            if self.unordered_ok:
                yield self._config(w, in_order=False)
        methods = [m for m in self.start_methods if m != self.context]
        yield from (LoaderConfig(w, multiprocessing_context=m) for m in methods)
        if self.cuda:
            yield self._config(w, pin_memory=True)
        combined = _combine(history, w, self.context)
        if combined is not None:
            yield combined


def startup_once_s(summary: Summary, epochs: int) -> float | None:
    """``epochs`` of a config measured starting its workers every epoch, as if it kept them:
    the first epoch as measured, each further one without the startup (the time to its first
    batch), plus one batch at the steady rate (a kept worker still makes the next epoch's
    first batch). Median over its trials; None without a steady rate."""
    estimates = []
    for trial in summary.ok_trials:
        epoch, startup, rate = trial.epoch_s, trial.startup_s, trial.rate
        if epoch is None or startup is None or rate is None or rate.batches_per_s <= 0:
            continue
        warm_epoch = epoch - startup + 1 / rate.batches_per_s
        estimates.append(epoch + warm_epoch * (epochs - 1))
    return sorted(estimates)[len(estimates) // 2] if estimates else None


def fewest_for_rounds(batches: int | None, workers: int) -> int:
    """The fewest workers that make an epoch of ``batches`` in as few rounds as ``workers``
    do. Each worker makes every n-th batch, so an epoch lasts its busiest worker's
    ``ceil(batches / n)`` batches: with 16 batches a rank, 13 workers take 2 rounds, as 8
    do, and only 16 take one (2 ranks on 2 cores, storage: tune stopped at 8, 1.19x slower
    than 16). An epoch of thousands of batches is left as it is."""
    if not batches or workers < 1:
        return workers
    return math.ceil(batches / math.ceil(batches / workers))


def fewer_rounds(batches: int | None, workers: int) -> int:
    """The fewest workers that make an epoch of ``batches`` in a round fewer than
    ``workers`` do (``workers`` itself where one round is all it takes)."""
    if not batches or workers < 1:
        return workers + 1
    rounds = math.ceil(batches / workers)
    return math.ceil(batches / (rounds - 1)) if rounds > 1 else workers


def _epoch_batches(summary: Summary) -> int | None:
    return next((t.epoch_batches for t in summary.trials if t.epoch_batches), None)


def _midpoints(w: int, measured: list[int], batches: int | None = None) -> list[int]:
    """Counts halfway to the nearest measured neighbours of ``w``, while the gap is wide (in
    whole rounds of an epoch's ``batches``: none on a neighbour's or ``w``'s plateau)."""
    below = [n for n in measured if n < w]
    above = [n for n in measured if n > w]
    points = []
    for neighbour in (max(below, default=None), min(above, default=None)):
        if neighbour is not None and abs(neighbour - w) > max(1, REFINE_GAP * w):
            point = fewest_for_rounds(batches, (neighbour + w) // 2)
            if point not in (w, neighbour):
                points.append(point)
    return points


def _combine(history: History, w: int, context: str | None = None) -> LoaderConfig | None:
    """The winning single-knob changes at ``w`` together, when more than one won."""
    base = next((s for s in history.usable() if s.config == plain(w, context)), None)
    if base is None or base.planned_s is None:
        return None
    winners = [
        s.config
        for s in history.usable()
        if s.config.num_workers == w
        and s.config != base.config
        and s.planned_s is not None
        and s.planned_s.median < base.planned_s.median
    ]
    if len(winners) < 2:
        return None
    return LoaderConfig(
        w,
        prefetch_factor=max((c.prefetch_factor or 0 for c in winners), default=0) or None,
        persistent_workers=any(c.persistent_workers for c in winners),
        pin_memory=any(c.pin_memory for c in winners),
        multiprocessing_context=next(
            (c.multiprocessing_context for c in winners if c.multiprocessing_context), context
        ),
        in_order=all(c.in_order for c in winners),
    )
