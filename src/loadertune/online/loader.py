"""``loadertune.DataLoader``: torch's DataLoader that picks its own worker knobs while the real
training runs (work in progress, issue 12: the mechanics; the search comes next).

Each epoch is the user's sampler's, drawn in the main process exactly as torch's loader draws it
(the same generator calls, in the same order), and handed out position by position to whichever
config loader is active (:mod:`feed`); a switch hands over what the retiring loader holds
(:mod:`relay`). What the user's loop sees is the batches, in the sampler's order, each once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from torch.utils.data import DataLoader as TorchDataLoader

from loadertune.engine.recorder import Recorder
from loadertune.online.feed import Feed
from loadertune.online.relay import Relay, Stage
from loadertune.online.stages import Settings, StagePool
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial


class Controller(Protocol):
    """Decides the configs: the first of an epoch, and after each delivered batch whether to
    switch (a new config) or stay (None)."""

    def first(self, epoch: int) -> LoaderConfig: ...

    def after(self, stage: Trial, position: int) -> LoaderConfig | None: ...


class Planned:
    """A fixed plan: ``(config, batches)`` pairs run in turn within each epoch, the last one to
    the epoch's end (for tests of the switch mechanics, and as a user's explicit schedule)."""

    def __init__(self, plan: list[tuple[LoaderConfig, int]]) -> None:
        if not plan:
            raise ValueError("a plan needs at least one config")
        self.plan = plan
        self._index = 0
        self._until = 0

    def first(self, epoch: int) -> LoaderConfig:
        self._index, self._until = 0, self.plan[0][1]
        return self.plan[0][0]

    def after(self, stage: Trial, position: int) -> LoaderConfig | None:
        if position + 1 < self._until or self._index + 1 >= len(self.plan):
            return None
        self._index += 1
        self._until += self.plan[self._index][1]
        return self.plan[self._index][0]


class DataLoader(TorchDataLoader):  # type: ignore[type-arg]
    """torch's ``DataLoader`` with the worker knobs chosen while it runs. The constructor takes
    torch's arguments; ``controller`` decides the configs (a :class:`Planned` schedule for
    now). ``stages`` keeps, per epoch, one :class:`Trial` per config stretch."""

    def __init__(self, dataset: Any, *args: Any, controller: Controller, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.controller = controller
        self.stages: list[list[Trial]] = []
        self._pool: StagePool | None = None

    def __iter__(self) -> _OnlineIterator:  # type: ignore[override]
        seed = self._draw_base_seed()
        return _OnlineIterator(self, self._stage_pool(seed), len(self.stages))

    def _draw_base_seed(self) -> int:
        """What torch's loader draws from the generator as an epoch starts (its workers' base
        seed), drawn the same way, so the sampler's own draw that follows sees the same state."""
        import torch

        if self.persistent_workers and self.num_workers > 0 and self._pool is not None:
            return self._pool.seed  # torch's persistent iterator draws it once
        value = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return int(value.item())

    def _stage_pool(self, seed: int) -> StagePool:
        if self._pool is None or self._pool.seed != seed:
            if self._pool is not None:
                self._pool.close()
            settings = Settings(
                self.dataset,
                self._auto_collation,
                self.collate_fn,
                self.worker_init_fn,
                self.timeout,
                self.pin_memory_device,
            )
            self._pool = StagePool(settings, seed)
        return self._pool

    def close(self) -> None:
        """Stop every config loader's workers now (also done when the loader is collected)."""
        if self._pool is not None:
            self._pool.close()

    def __del__(self) -> None:
        self.close()


class _OnlineIterator(Iterator[Any]):
    """One epoch: the relay's batches, unwrapped; each stretch of a config recorded."""

    def __init__(self, loader: DataLoader, pool: StagePool, epoch: int) -> None:
        self.loader, self.pool, self.epoch = loader, pool, epoch
        self.feed = Feed(loader._index_sampler, _length(loader))
        self.relay = Relay()
        self.trials: list[Trial] = []
        loader.stages.append(self.trials)
        self.recorders: dict[int, Recorder] = {}
        self._open: Recorder | None = None
        self._position = 0
        self._switch(loader.controller.first(epoch))

    def __next__(self) -> Any:
        if self._open is not None:
            self._open.finish()  # the user's step on the last batch ended as it asked again
            self._open = None
        upcoming = self.relay.retiring[0] if self.relay.retiring else self.relay.active
        if upcoming is not None:
            self.recorders[id(upcoming)].requested()
        try:
            stage, item = next(self.relay)
        except BaseException:
            self._end()
            raise
        recorder = self.recorders[id(stage)]
        if stage is not upcoming:
            recorder.requested()  # a retiring stage ran out in between: asked of this one now
        recorder.received(item)
        self._open = recorder
        decision = self.loader.controller.after(recorder.trial, self._position)
        self._position += 1
        if decision is not None and self.relay.active is not None:
            self._switch(decision)
        return item.batch

    def _switch(self, config: LoaderConfig) -> None:
        trial = Trial(config, repeat=len(self.trials))
        recorder = Recorder(trial)
        self.trials.append(trial)
        recorder.begin()
        stage = self.relay.switch(lambda: self.pool.start(config, self.feed))
        self.recorders[id(stage)] = recorder

    def _end(self) -> None:
        self.relay.close()
        for trial in self.trials:
            trial.trim()
            trial.round_raw()

    def __del__(self) -> None:
        self.relay.close()


def _length(loader: TorchDataLoader) -> int | None:  # type: ignore[type-arg]
    try:
        return len(loader._index_sampler)
    except TypeError:
        return None


__all__ = ["Controller", "DataLoader", "Planned", "Stage"]
