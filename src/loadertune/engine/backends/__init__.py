"""The loader backend seam: everything that knows how a loader's workers live and die.

A backend builds the loader for a config (batches carry the probe's stamp, the sampler is
recorded), names its worker processes, spots the ones that died and shuts them down. The torch
``DataLoader`` backend (:mod:`.dataloader`) holds every use of DataLoader internals; a thread
backend plugs in beside it, and the tests drive the engine through a fake one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from loadertune.engine.probe import IndexRecorder, ProbedBatch
from loadertune.records.config import LoaderConfig


@dataclass(frozen=True)
class DeadWorker:
    """A worker that ended on its own: ``exitcode`` as multiprocessing gives it (negative:
    killed by that signal), and the batches it had been given and not yet returned to the main
    loop (it died loading one of them; the others may wait unread in the queue)."""

    worker_id: int
    pid: int | None
    exitcode: int
    batches: tuple[int, ...]


class LoaderBackend(Protocol):
    """How the engine builds, watches and stops the loader of one config."""

    def build(self, config: LoaderConfig, indices: IndexRecorder) -> Iterable[ProbedBatch]:
        """The loader for ``config``: its batches are :class:`ProbedBatch`, the order it asks
        for indices goes through ``indices``."""
        ...

    def worker_pids(self, iterator: Iterator[ProbedBatch]) -> list[int]:
        """The PIDs of the iterator's worker processes (none for threads or no workers)."""
        ...

    def dead_workers(self, iterator: Iterator[ProbedBatch] | None) -> list[DeadWorker]:
        """The iterator's workers that have exited, each with its unreturned batches."""
        ...

    def shutdown(self, iterator: Iterator[ProbedBatch] | None, *, kill_first: bool) -> None:
        """Stop the iterator's workers; ``kill_first`` after a failure, so a hung worker is
        not waited for."""
        ...


def dead_worker(worker_id: int, pid: int | None, exitcode: int, batches: Any) -> DeadWorker:
    """A :class:`DeadWorker` with its batches sorted."""
    return DeadWorker(worker_id, pid, exitcode, tuple(sorted(batches)))
