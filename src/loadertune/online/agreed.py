"""The online loader under ``torch.distributed``: every rank runs the same config, and every
switch is rank 0's search's, taken on all ranks' figures and sent to all.

The ranks talk only where each of them is sure to be: as each epoch starts (every rank iterates
each epoch: a rank that ended early, under ``Join``, has left its loop by then) and at check-ins
inside an epoch, at positions agreed in advance that every rank's epoch reaches (before the
shortest rank's last batch, so uneven last batches never leave a rank waiting for one that has
ended). At each, every rank sends its stretch and rank 0 answers with the config to run and
the next check-in, about :data:`CHECK_EVERY_S` of batches ahead at the slowest rank's pace; once
the search has settled, only the epochs' starts remain (a drift reopens it there).

A config that breaks on one rank is replaced there by the baseline at once; the break reaches
rank 0 at the next meeting, and every rank then moves to the search's fallback. The messages go
over a gloo group of our own (:func:`~loadertune.engine.ranks.joined`), never the user's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from loadertune.engine.cpu import tree_cpu_seconds
from loadertune.engine.ranks import Ranks
from loadertune.online.search import Autotune
from loadertune.online.stretch import per_batch_s, snapshot
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial

log = logging.getLogger("loadertune")

CHECK_EVERY_S = 0.25  # a check-in every this many seconds of batches, while searching (four
# small gloo collectives: about a millisecond on one machine)


@dataclass(frozen=True)
class _Report:
    """What a rank sends to a meeting: its stretch (or the last epoch's), the batches its
    epoch has left (or holds, as it starts), and the configs that broke on it since."""

    stretch: Trial | None
    batches: int | None
    broken: tuple[tuple[LoaderConfig, str], ...] = ()


@dataclass(frozen=True)
class _Order:
    """Rank 0's answer: the config to run (None: stay), whether the epoch runs it plainly
    (see :mod:`plain`), the next check-in's position in this epoch (None: none), and whether
    the search has settled."""

    config: LoaderConfig | None
    next_at: int | None
    plain: bool = False
    settled: bool = False


@dataclass
class Agreed:
    """The controller of one online loader on one rank (see
    :class:`~loadertune.online.control.Controller`). ``search``: rank 0's (None on the
    others); ``baseline``: what a rank runs at once where its config broke."""

    ranks: Ranks
    search: Autotune | None
    baseline: LoaderConfig
    running: LoaderConfig | None = None
    plain: bool = False
    done: bool = False  # rank 0's search has settled (as of the last order)
    next_at: int | None = None
    last_at: int = -1  # the last position the search was asked about
    limit: int | None = None  # the last position every rank's epoch goes past
    ended: Trial | None = None  # this rank's stretch cut by the last epoch's end, untold
    broken: list[tuple[LoaderConfig, str]] = field(default_factory=list)

    @property
    def settled(self) -> Any:
        return self.search.settled if self.search is not None else None

    def meet(self, epoch: int, batches: int | None) -> None:
        """An epoch starts (every rank here): the last epoch's stretches told to the search,
        and this epoch's config, plainness and first check-in agreed."""
        report = _Report(self.ended, batches, tuple(self.broken))
        self.ended, self.broken[:] = None, []
        every = self.ranks.gather(report)
        order = self._open_epoch(every, epoch) if every is not None else None
        self._obey(self.ranks.broadcast(order))

    def first(self, epoch: int) -> LoaderConfig:
        return self.running or self.baseline

    def plain_next(self) -> bool:
        return self.plain

    def after(self, stage: Trial, position: int, left: int | None) -> LoaderConfig | None:
        """At a check-in, the ranks' stretches to rank 0 and its order back; else nothing
        (no rank switches on its own clock)."""
        if self.next_at is None or position != self.next_at:
            return None
        report = _Report(snapshot(stage, tree_cpu_seconds), left, tuple(self.broken))
        self.broken[:] = []
        every = self.ranks.gather(report)
        order = self._check_in(every, position) if every is not None else None
        return self._obey(self.ranks.broadcast(order))

    def epoch_ended(self, stage: Trial) -> None:
        """Kept for the next epoch's meeting (read now: the loop may do other work first)."""
        self.ended = snapshot(stage, tree_cpu_seconds) if stage.batches else None
        self.next_at = None

    def conclude(self) -> None:
        """The job's last planned epoch ended: rank 0 settles on its own last stretch (no
        meeting follows to bring the others')."""
        if self.search is not None:
            if self.ended is not None and self.ended.config == self.search.running:
                self.search.epoch_ended(self.ended)
            self.ended = None
            self.search.conclude()

    def failed(self, config: LoaderConfig, reason: str) -> LoaderConfig:
        """``config`` broke on this rank: the baseline here at once, the break told to rank
        0 at the next meeting."""
        self.broken.append((config, reason))
        self.running = self.baseline
        return self.baseline

    def _open_epoch(self, every: list[_Report], epoch: int) -> _Order:
        search = self._leader()
        self._tell_broken(every)
        ended = [r.stretch for r in every if r.stretch and r.stretch.config == search.running]
        if ended:
            search.epoch_ended(slowest(ended))
        config = search.first(epoch)
        lengths = [r.batches for r in every]
        self.limit = None if None in lengths else min(n for n in lengths if n is not None) - 2
        self.last_at = -1
        start = 0 if search.settled is None and not search.plain_next() else None
        return self._order(config, self._within(start), plain=search.plain_next())

    def _check_in(self, every: list[_Report], position: int) -> _Order:
        search = self._leader()
        search.passed(position - self.last_at - 1)  # the search counts the job's batches
        self.last_at = position
        if self._tell_broken(every):
            return self._order(search.running, self._next(every, position))
        stretches = [r.stretch for r in every if r.stretch is not None]
        if any(t.config != search.running for t in stretches):
            return self._order(None, self._next(every, position))  # a fallback on its way
        lefts = [r.batches for r in every]
        left = None if None in lefts else min(n for n in lefts if n is not None)
        decision = search.after(slowest(stretches), position, left)
        return self._order(decision, self._next(every, position))

    def _order(
        self, config: LoaderConfig | None, next_at: int | None, *, plain: bool = False
    ) -> _Order:
        """Rank 0's order; no check-in once the search has settled."""
        settled = self._leader().settled is not None
        return _Order(config, None if settled else next_at, plain=plain, settled=settled)

    def _tell_broken(self, every: list[_Report]) -> bool:
        """Each break any rank reported, told to the search once (it moves to a fallback)."""
        search = self._leader()
        broken = {c: r for report in every for c, r in report.broken}
        for config, reason in broken.items():
            log.warning("%s broke on a rank (%s): every rank moves on", config.label(), reason)
            search.failed(config, reason)
        return bool(broken)

    def _next(self, every: list[_Report], position: int) -> int | None:
        """The next check-in: :data:`CHECK_EVERY_S` ahead at the slowest rank's pace."""
        paces = [per_batch_s(r.stretch) for r in every if r.stretch is not None]
        pace = max(paces, default=0.0)
        ahead = round(CHECK_EVERY_S / pace) if 0 < pace < float("inf") else 1
        return self._within(position + max(ahead, 1), after=position)

    def _within(self, position: int | None, after: int = -1) -> int | None:
        """``position``, or the last one every rank's epoch goes past if that comes first;
        None where that is not past ``after``."""
        if position is None or self.limit is None:
            return None
        position = min(position, self.limit)
        return position if position > after else None

    def _obey(self, order: _Order | None) -> LoaderConfig | None:
        if order is None:
            return None
        self.next_at, self.plain, self.done = order.next_at, order.plain, order.settled
        if order.config is not None:
            self.running = order.config
        return order.config

    def _leader(self) -> Autotune:
        if self.search is None:
            raise RuntimeError("only rank 0 runs the search")
        return self.search


def slowest(stretches: list[Trial]) -> Trial:
    """The job's stretch from every rank's: the one with the most seconds per batch (a job
    goes at its slowest rank's pace)."""
    return max(stretches, key=per_batch_s)
