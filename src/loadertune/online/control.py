"""Who decides the configs of an online loader: the :class:`Controller` protocol, and a fixed
:class:`Planned` schedule (the search, :class:`~loadertune.online.search.Autotune`, is the
default)."""

from __future__ import annotations

from typing import Protocol

from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial


class Controller(Protocol):
    """The first config of an epoch; after each batch of the active stretch whether to switch
    (a new config) or stay (None), given the batches ``left`` in the epoch (None for a
    stream); what an epoch's end means."""

    def first(self, epoch: int) -> LoaderConfig: ...

    def after(self, stage: Trial, position: int, left: int | None) -> LoaderConfig | None: ...

    def epoch_ended(self, stage: Trial) -> None: ...

    def failed(self, config: LoaderConfig, reason: str) -> LoaderConfig:
        """``config``'s loader broke: the config to run instead."""
        ...


class Planned:
    """A fixed plan: ``(config, batches)`` pairs run in turn within each epoch, the last one to
    the epoch's end (for the switch mechanics' tests, and as an explicit schedule)."""

    def __init__(self, plan: list[tuple[LoaderConfig, int]]) -> None:
        if not plan:
            raise ValueError("a plan needs at least one config")
        self.plan = plan
        self._index = 0
        self._until = 0

    def first(self, epoch: int) -> LoaderConfig:
        self._index, self._until = 0, self.plan[0][1]
        return self.plan[0][0]

    def after(self, stage: Trial, position: int, left: int | None) -> LoaderConfig | None:
        if position + 1 < self._until or self._index + 1 >= len(self.plan):
            return None
        self._index += 1
        self._until += self.plan[self._index][1]
        return self.plan[self._index][0]

    def epoch_ended(self, stage: Trial) -> None:
        """A plan restarts each epoch."""

    def failed(self, config: LoaderConfig, reason: str) -> LoaderConfig:
        """The plan's first config stands in for one that broke (the rest of the plan runs)."""
        return self.plan[0][0] if self.plan[0][0] != config else LoaderConfig()
