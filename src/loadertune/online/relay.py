"""The handover between configs inside one epoch: the batches of a succession of config loaders,
delivered in the feed's order, each exactly once.

Switching closes the active config's tap first, then starts the next config's loader (whose
prefetch pulls the following positions). The retiring loader's batches, made or in flight, come
out before any of the new one's, so with ``in_order`` the epoch keeps the sampler's order; the new
loader's startup overlaps the retiring one's drain.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loadertune.engine.probe import ProbedBatch
from loadertune.online.feed import Tap
from loadertune.records.config import LoaderConfig


@dataclass
class Stage:
    """One config's stretch of an epoch: its loader's iterator and the tap that feeds it.
    ``delivered`` counts the batches it handed to the user's loop."""

    config: LoaderConfig
    iterator: Iterator[ProbedBatch]
    tap: Tap
    delivered: int = 0
    on_end: Callable[[Stage], None] | None = field(default=None, repr=False)
    recorder: Any = field(default=None, repr=False)  # what records this stretch

    def end(self) -> None:
        if self.on_end is not None:
            self.on_end(self)


class StageFailed(Exception):  # noqa: N818 - a carrier, re-raised as its cause or handled
    """A stage's loader raised ``error``: the relay names which stage, the online iterator
    decides (a worker that died falls back; the user's own exception reaches the user)."""

    def __init__(self, stage: Stage, error: BaseException) -> None:
        super().__init__(str(error))
        self.stage, self.error = stage, error


class Relay:
    """``next()`` gives ``(stage, batch)``: first whatever retiring stages still hold, oldest
    first, then the active stage's; StopIteration when the active stage ends (the feed ran
    out: the epoch is over)."""

    def __init__(self) -> None:
        self.active: Stage | None = None
        self.retiring: deque[Stage] = deque()

    def switch(self, start: Callable[[], Stage]) -> Stage:
        """Retire the active stage (its tap closed, its batches still to come) and make the one
        ``start`` builds active: ``start`` runs after the close, so it pulls what follows."""
        if self.active is not None:
            self.active.tap.close()
            self.retiring.append(self.active)
        self.active = start()
        return self.active

    def __next__(self) -> tuple[Stage, Any]:
        while self.retiring:
            stage = self.retiring[0]
            try:
                return stage, self._take(stage)
            except StopIteration:
                self.retiring.popleft()
                stage.end()
        if self.active is None:
            raise StopIteration
        try:
            return self.active, self._take(self.active)
        except StopIteration:
            stage, self.active = self.active, None
            stage.end()
            raise

    def close(self) -> None:
        """End every stage (the loop left early, or failed)."""
        stages = [*self.retiring, *([self.active] if self.active else [])]
        self.retiring.clear()
        self.active = None
        for stage in stages:
            stage.tap.close()
            stage.end()

    def drop_from(self, stage: Stage) -> list[Stage]:
        """Take ``stage`` and every stage after it out of the relay (a failure: the positions
        they hold must be handed out again, in order); the dropped stages, oldest first."""
        stages = [*self.retiring, *([self.active] if self.active else [])]
        dropped = stages[stages.index(stage) :]
        self.retiring = deque(s for s in self.retiring if s not in dropped)
        if self.active in dropped:
            self.active = None
        return dropped

    @staticmethod
    def _take(stage: Stage) -> ProbedBatch:
        try:
            item = next(stage.iterator)
        except StopIteration:
            raise
        except Exception as exc:
            raise StageFailed(stage, exc) from exc
        stage.delivered += 1
        if stage.config.in_order:
            stage.tap.delivered()
        return item
