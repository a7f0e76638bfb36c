"""The passive recorder: what happens at each ``next()`` of a probed loader and between two of
them (the step), recorded into a :class:`Trial` by whichever loop drives it.

The offline trial is our loop plus the recorder (:mod:`offline`); the online loader and the
Lightning callback are the user's loop plus the recorder. It never calls ``next()`` or the
step itself, takes no signal and starts nothing: it reads a clock and appends to lists.

Driven in order: :meth:`Recorder.begin` right before ``iter(loader)``; per batch
:meth:`~Recorder.requested` before ``next()``, :meth:`~Recorder.received` with what it
returned, :meth:`~Recorder.stepped` after the step (or, where the loop does not say, the next
``requested()`` ends the step); :meth:`~Recorder.ended` at ``StopIteration``, or
:meth:`~Recorder.finish` when the loop stops early. :meth:`Recorder.batches` does all of that
for a plain ``for batch in ...`` loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from loadertune.engine.batches import batch_len, tensor_bytes
from loadertune.engine.machine import shm_warning
from loadertune.engine.probe import ProbedBatch
from loadertune.records.trial import Trial

Clock = Callable[[], float]
NOT_PROBED = (
    "the recorder reads loaders whose batches carry the worker's stamp (ProbedBatch), got a "
    "{}: build the loader with Workload(...).build_loader(config), not DataLoader(...)"
)


class Recorder:
    """Four moments per batch (asked for, ready, step ended, made by its worker) and who made
    it, in seconds since :meth:`begin`. With ``count_samples`` (the default) each batch's size
    is read off the batch; the offline trial turns it off where an :class:`IndexRecorder`
    passed to ``build_loader`` gives the exact sizes from the sampler instead. The first
    batch's bytes are checked against ``shm_total_bytes`` (the size of /dev/shm) for the
    batches in flight.

    >>> loader = workload.build_loader(config)  # doctest: +SKIP
    >>> recorder = Recorder(Trial(config, epoch_batches=len(loader)))  # doctest: +SKIP
    >>> recorder.begin()  # doctest: +SKIP
    >>> for batch in recorder.batches(iter(loader)):  # doctest: +SKIP
    ...     step(batch)
    >>> recorder.trial.epoch_s  # doctest: +SKIP
    """

    def __init__(
        self,
        trial: Trial,
        *,
        clock: Clock = time.perf_counter,
        count_samples: bool = True,
        shm_total_bytes: int | None = None,
    ) -> None:
        self.trial = trial
        self.clock = clock
        self.count_samples = count_samples
        self.shm_total_bytes = shm_total_bytes
        self.start = clock()
        self._request_s = 0.0
        self._ready_s = 0.0
        self._item: ProbedBatch | None = None  # received, its step not ended yet

    def begin(self) -> float:
        """The trial's time zero: call right before ``iter(loader)``."""
        self.start = self.clock()
        return self.start

    def requested(self) -> None:
        """The loop asks for the next batch (a step still open ends here)."""
        now = self.clock()
        if self._item is not None:
            self._record(now)
        self._request_s = now - self.start

    def received(self, item: ProbedBatch) -> None:
        """``next()`` returned ``item``."""
        self._ready_s = self.clock() - self.start
        if not self.trial.ready_s and not isinstance(item, ProbedBatch):
            raise TypeError(NOT_PROBED.format(type(item).__name__))
        self._item = item

    def stepped(self) -> float:
        """The step on the last batch returned; the clock's reading then."""
        now = self.clock()
        self._record(now)
        return now

    def ended(self) -> None:
        """``next()`` raised ``StopIteration``: the whole epoch ran."""
        now = self.clock()
        if self._item is not None:
            self._record(now)
        self.trial.complete, self.trial.end_s = True, round(now - self.start, 6)

    def finish(self) -> None:
        """The loop stopped before the epoch's end: close the last batch's step."""
        if self._item is not None:
            self._record(self.clock())

    def untimed(self, work: Callable[[], Any]) -> None:
        """Run ``work`` with the trial's clock stopped (nothing in flight may depend on it)."""
        paused = self.clock()
        work()
        self.start += self.clock() - paused

    def batches(self, iterator: Iterator[ProbedBatch]) -> Iterator[Any]:
        """The user's own ``for`` loop drives the recording: the batches, unwrapped; the time
        between two of them is the step."""
        try:
            while True:
                self.requested()
                try:
                    item = next(iterator)
                except StopIteration:
                    self.ended()
                    return
                self.received(item)
                yield item.batch
        finally:
            self.finish()

    def _record(self, ended: float) -> None:
        """Rounding waits for the end (this is the hot path)."""
        item, trial, start = self._item, self.trial, self.start
        if item is None:
            return
        self._item = None
        trial.request_s.append(self._request_s)
        trial.ready_s.append(self._ready_s)
        trial.step_end_s.append(ended - start)
        trial.done_s.append(item.done_s - start)
        trial.worker_id.append(item.worker_id)
        trial.n_samples.append(batch_len(item.batch) if self.count_samples else 0)
        if trial.batch_bytes is None:
            self._first_batch(item.batch)

    def _first_batch(self, batch: Any) -> None:
        """Bytes per batch, from the first, and whether the batches in flight fit in /dev/shm."""
        trial, config = self.trial, self.trial.config
        trial.batch_bytes = tensor_bytes(batch)
        if not config.num_workers:
            return
        prefetch = config.in_flight_batches // config.num_workers
        warning = shm_warning(config.num_workers, prefetch, trial.batch_bytes, self.shm_total_bytes)
        if warning is not None:
            trial.warnings.append(warning)
