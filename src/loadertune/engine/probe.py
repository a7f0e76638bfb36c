"""Worker-side timing carried beside each batch, and main-side index recording.

The collate wrapper runs wherever collation runs (a worker, or the main process with
``num_workers=0``) and stamps each batch with the moment it was finished and by which worker.
``time.perf_counter`` is CLOCK_MONOTONIC on Linux, one clock for every process, so worker
stamps compare directly with the main loop's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, NamedTuple

from loadertune.records.trial import MAIN_PROCESS


class ProbedBatch(NamedTuple):
    """A batch with its production stamp. A NamedTuple so ``pin_memory`` keeps its shape."""

    batch: Any
    done_s: float
    worker_id: int


class ProbedCollate:
    """Wraps the loader's collate_fn; picklable, so it travels to spawn/forkserver workers."""

    def __init__(self, inner: Callable[[Any], Any]) -> None:
        self.inner = inner

    def __call__(self, samples: Any) -> ProbedBatch:
        batch = self.inner(samples)
        done = time.perf_counter()
        info = _get_worker_info()()
        return ProbedBatch(batch, done, MAIN_PROCESS if info is None else info.id)


_worker_info_fn: Any = None


def _get_worker_info() -> Any:
    """torch's ``get_worker_info``, imported once per process (this runs once per batch)."""
    global _worker_info_fn  # noqa: PLW0603 - a per-process cache of an import
    if _worker_info_fn is None:
        from torch.utils.data import get_worker_info

        _worker_info_fn = get_worker_info
    return _worker_info_fn


class IndexRecorder:
    """Wraps a (batch) sampler in the main process; remembers what it handed out and when.

    ``handed[k]`` is the k-th item the loader asked for (a list of indices, or one index),
    ``handed_s[k]`` the perf_counter time it was asked for: the earliest a worker could start it.
    """

    def __init__(self, inner: Iterable[Any]) -> None:
        self.inner = inner
        self.handed: list[Any] = []
        self.handed_s: list[float] = []

    def __iter__(self) -> Iterator[Any]:
        self.handed.clear()
        self.handed_s.clear()
        handed, handed_s, clock = self.handed.append, self.handed_s.append, time.perf_counter
        for item in self.inner:  # the hot path of every batch: bound methods, no lookups
            handed(item)
            handed_s(clock())
            yield item

    def __len__(self) -> int:
        if not isinstance(self.inner, Sized):
            raise TypeError("the wrapped sampler has no length")
        return len(self.inner)

    def indices_of(self, position: int) -> list[Any] | None:
        """The indices of the ``position``-th batch handed out, or None if not handed out."""
        if position >= len(self.handed):
            return None
        item = self.handed[position]
        return list(item) if isinstance(item, list | tuple) else [item]
