"""One epoch's indices, handed out once: the feed draws from the user's (batch) sampler in the
main process, as torch's loader does, and gives each position to exactly one config's loader.

A config's loader pulls through a :class:`Tap`. Retiring that config closes its tap: the loader
gets no more indices, finishes the batches it was given (they are handed over, never dropped)
and ends, while the next config's tap starts where the feed stands. Positions are counted, so
an epoch can be audited: every position handed out once, in the sampler's order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any


def epoch_length(loader: Any) -> int | None:
    """Batches in one of ``loader``'s epochs; None for a stream without length."""
    try:
        return len(loader)
    except TypeError:
        return None


class Feed:
    """The indices of one epoch, drawn lazily from ``sampler`` (what torch's loader iterates:
    the batch sampler with automatic batching, else the sampler)."""

    def __init__(self, sampler: Iterable[Any], length: int | None = None) -> None:
        self._source = iter(sampler)  # lazy: a RandomSampler draws its seed at the first pull
        self.length = length
        self.handed = 0  # positions handed out so far
        self.exhausted = False
        self.taps: list[Tap] = []
        self._again: deque[tuple[int, Any]] = deque()  # handed back by a failed config
        self._stamps: tuple[list[float], float] | None = None  # see stamp_into

    def stamp_into(self, handed_s: list[float], origin_s: float) -> None:
        """From now on, note when each position is handed out (``perf_counter`` less
        ``origin_s``) in ``handed_s``: only the newest tap pulls, so these are its stage's."""
        self._stamps = (handed_s, origin_s)

    def requeue(self, items: list[tuple[int, Any]]) -> None:
        """Positions a failed config was given and never delivered: handed out again first,
        in their order, before anything new."""
        self._again.extendleft(reversed(items))

    def tap(self) -> Tap:
        """A new outlet, starting at the next position."""
        tap = Tap(self)
        self.taps.append(tap)
        return tap

    def pull(self) -> tuple[int, Any]:
        """The next position and its indices; StopIteration at the epoch's end."""
        if self._again:
            item = self._again.popleft()
        elif self.exhausted:
            raise StopIteration
        else:
            item = self._draw()
        if self._stamps is not None:
            self._stamps[0].append(time.perf_counter() - self._stamps[1])
        return item

    def _draw(self) -> tuple[int, Any]:
        try:
            indices = next(self._source)
        except StopIteration:
            self.exhausted = True
            raise
        position = self.handed
        self.handed += 1
        return position, indices

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("the sampler has no length")
        return self.length

    @property
    def left(self) -> int | None:
        """Positions not handed out yet (None without a length)."""
        if self.exhausted:
            return len(self._again)
        if self.length is None:
            return None
        return max(self.length - self.handed, 0) + len(self._again)


class Tap:
    """What one config's loader iterates as its batch sampler (or sampler): the feed's indices
    until :meth:`close`. ``pending`` holds what it was given and has not delivered yet, in
    order (the relay calls :meth:`delivered` for each batch that reached the user's loop)."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.closed = False
        self.pending: deque[tuple[int, Any]] = deque()

    def delivered(self) -> None:
        """The oldest pending batch reached the user's loop (in-order delivery)."""
        if self.pending:
            self.pending.popleft()

    def close(self) -> None:
        """Hand out nothing more: the loader ends once it has delivered what it was given."""
        self.closed = True

    def __iter__(self) -> Iterator[Any]:
        while not self.closed:
            try:
                item = self.feed.pull()
            except StopIteration:
                return
            self.pending.append(item)
            yield item[1]

    def __len__(self) -> int:
        return len(self.feed)


class Outlet:
    """A config loader's batch sampler for its whole life (torch forbids replacing one after
    construction): each epoch, or each return to this config, it is plugged into a new tap."""

    def __init__(self) -> None:
        self.tap: Tap | None = None

    def plug(self, tap: Tap) -> None:
        self.tap = tap

    def __iter__(self) -> Iterator[Any]:
        if self.tap is None:
            return iter(())
        return iter(self.tap)

    def __len__(self) -> int:
        return len(self.tap) if self.tap is not None else 0
