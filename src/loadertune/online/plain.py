"""An epoch on a settled pick without workers: torch's own single-process iterator over the
user's sampler and collate, timed batch by batch in the user's loop, with none of the relay's
machinery in between.

Without workers a batch can take a tenth of a millisecond (rows in memory), and the relay, the
feed's tap and the worker stamp then cost a tenth of the job again. Once the search has settled
on such a config there is nothing to hand over and nobody to switch to: each epoch is torch's
(the same generator draws, the same order, the user's exceptions as torch raises them), and
its time still goes to the search, which reopens where the rate drifts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from loadertune.engine.batches import batch_len, tensor_bytes
from loadertune.online.stages import Settings, index_source
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import MAIN_PROCESS, Trial


def plain_loader(loader: Any, settings: Settings, config: LoaderConfig) -> Any:
    """A torch DataLoader of ``loader``'s dataset, sampler, collate and generator, without
    workers (``config`` says whether to pin)."""
    from torch.utils.data import DataLoader

    return DataLoader(
        settings.dataset,
        **index_source(settings, loader._index_sampler),
        collate_fn=settings.collate_fn,
        pin_memory=config.pin_memory,
        pin_memory_device=settings.pin_memory_device,
        generator=loader.generator,
    )


class PlainEpoch(Iterator[Any]):
    """One epoch of ``plain`` (see :func:`plain_loader`), recorded as a stretch of ``config``
    (per batch: asked for, ready, step ended); ``ended(trial)`` is called at its end."""

    def __init__(self, plain: Any, trial: Trial, ended: Any) -> None:
        self.trial, self._ended = trial, ended
        self._clock = time.perf_counter
        self._start = self._clock()
        self._iterator = iter(plain)
        self._length: int | None = len(plain) if hasattr(plain.sampler, "__len__") else None
        self._asked = self._ready = 0.0
        self._open = False  # a batch returned, its step not ended yet
        self._done = False

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        now = self._clock() - self._start
        if self._open:
            self._record(now)
        self._asked, self._open = now, False
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._finish(complete=True)
            raise
        except BaseException:
            self._finish(complete=False)
            raise
        self._ready, self._open = self._clock() - self._start, True
        self.trial.n_samples.append(batch_len(batch))
        if self.trial.batch_bytes is None:
            self.trial.batch_bytes = tensor_bytes(batch)
        return batch

    def _record(self, step_end: float) -> None:
        trial = self.trial
        trial.request_s.append(self._asked)
        trial.ready_s.append(self._ready)
        trial.step_end_s.append(step_end)
        trial.done_s.append(self._ready)  # made in this process: done as it was returned
        trial.worker_id.append(MAIN_PROCESS)

    def _finish(self, *, complete: bool, end_s: float | None = None) -> None:
        self._done = True
        trial = self.trial
        trial.trim()
        trial.round_raw()
        if complete:
            end = self._clock() - self._start if end_s is None else end_s
            trial.complete, trial.end_s = True, round(end, 6)
            self._ended(trial)

    def end_if_handed_out(self, cut: bool = False) -> None:
        """The loop took every batch but never asked past the last (as Lightning's loops
        do): the epoch ended complete, at its last batch (its step untimed); or (``cut``) the
        loop's epoch ended early by its own rule: the stretch is told, not complete."""
        whole = self._length is not None and len(self.trial.n_samples) >= self._length
        if self._done or not (whole or cut):
            return
        self._open = False
        if whole:
            self._finish(complete=True, end_s=self._ready)
        else:
            self._finish(complete=False)
            self._ended(self.trial)

    def close(self) -> None:
        """The loop left before the epoch's end: the last step closed, the stretch kept (an
        epoch it took whole still counts complete)."""
        self.end_if_handed_out()
        if not self._done:
            if self._open:
                self._record(self._clock() - self._start)
                self._open = False
            self._finish(complete=False)

    def __del__(self) -> None:
        try:  # noqa: SIM105 - contextlib's name may be gone at interpreter exit
            self.close()
        except Exception:  # noqa: BLE001, S110 - at exit, module names may be gone
            pass
