"""One epoch of an online loader: the relay's batches, unwrapped for the user's loop, each
config's stretch recorded, the controller asked after each batch of the active stretch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loadertune.engine.cpu import tree_cpu_seconds
from loadertune.engine.recorder import Recorder
from loadertune.online.feed import Feed
from loadertune.online.relay import Relay
from loadertune.online.stages import StagePool
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial


class OnlineIterator(Iterator[Any]):
    """``loader``: the online DataLoader (its sampler, controller and stage log)."""

    def __init__(self, loader: Any, pool: StagePool, epoch: int) -> None:
        self.loader, self.pool, self.epoch = loader, pool, epoch
        self.controller = loader.controller
        self.iterable = pool.settings.iterable
        self.length = _length(loader)
        self.feed = Feed(() if self.iterable else loader._index_sampler, self.length)
        self.relay = Relay()
        self.trials: list[Trial] = []
        loader.stages.append(self.trials)
        self.recorders: dict[int, Recorder] = {}
        self._open: Recorder | None = None
        self._position = 0
        self._ended = False
        self._switch(self.controller.first(epoch))

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        if self._open is not None:
            self._open.finish()  # the user's step on the last batch ended as it asked again
            self._open = None
        upcoming = self.relay.retiring[0] if self.relay.retiring else self.relay.active
        if upcoming is not None:
            self.recorders[id(upcoming)].requested()
        try:
            stage, item = next(self.relay)
        except StopIteration:
            self._end(whole=True)
            raise
        except BaseException:
            self._end(whole=False)
            raise
        recorder = self.recorders[id(stage)]
        if stage is not upcoming:
            recorder.requested()  # a retiring stage ran out in between: asked of this one now
        recorder.received(item)
        self._open = recorder
        if stage is self.relay.active and not self.iterable:
            self._ask(recorder.trial)
        self._position += 1
        return item.batch

    def _ask(self, trial: Trial) -> None:
        decision = self.controller.after(trial, self._position, self.feed.left)
        if decision is not None and decision != trial.config:  # the same config: stay
            self._switch(decision)
        self._tell_if_settled()

    def _switch(self, config: LoaderConfig) -> None:
        trial = Trial(config, repeat=len(self.trials), epoch_batches=self.length)
        recorder = Recorder(trial)
        self.trials.append(trial)
        cpu = tree_cpu_seconds()  # read before the stretch's clock starts
        recorder.begin()
        trial.cpu.append((0.0, cpu))
        stage = self.relay.switch(lambda: self.pool.start(config, self.feed))
        self.recorders[id(stage)] = recorder
        self._active = recorder

    def _end(self, *, whole: bool) -> None:
        """The epoch ended (``whole``) or the loop failed: every stage stopped, the stretches
        kept; the active stretch told to the controller."""
        self._ended = True
        self.relay.close()
        recorder = self._active
        if whole:
            if recorder.trial.repeat == 0 and self._position == recorder.trial.batches:
                recorder.ended()  # the stretch was the whole epoch: measured whole
            self.controller.epoch_ended(recorder.trial)
            if self.epoch + 1 == (self.loader.epochs or 0) and hasattr(self.controller, "conclude"):
                self.controller.conclude()
            self._tell_if_settled()
        for trial in self.trials:
            trial.trim()
            trial.round_raw()

    def _tell_if_settled(self) -> None:
        settled = getattr(self.controller, "settled", None)
        if settled is not None and not getattr(self.loader, "_told", False):
            self.loader._told = True
            self.loader.settled(self.controller)

    def close(self) -> None:
        """The loop left before the epoch's end: stop its stages now."""
        if not self._ended:
            self._end(whole=False)

    def __del__(self) -> None:
        self.close()


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
