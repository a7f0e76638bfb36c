"""The torch ``DataLoader`` backend: the one module that reads DataLoader internals
(``_workers``, ``_task_info``, ``_shutdown_workers``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from loadertune.engine.backends import DeadWorker, dead_worker
from loadertune.engine.probe import IndexRecorder, ProbedBatch
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig


@dataclass(frozen=True)
class DataLoaderBackend:
    """Worker processes as torch's multiprocessing DataLoader iterator runs them."""

    workload: Workload

    def build(self, config: LoaderConfig, indices: IndexRecorder) -> Iterable[ProbedBatch]:
        return self.workload.build_loader(config, indices)

    def worker_pids(self, iterator: Iterator[ProbedBatch]) -> list[int]:
        return worker_pids(iterator)

    def dead_workers(self, iterator: Iterator[ProbedBatch] | None) -> list[DeadWorker]:
        return dead_workers(iterator)

    def shutdown(self, iterator: Iterator[ProbedBatch] | None, *, kill_first: bool) -> None:
        shut_down(iterator, kill_first=kill_first)


def worker_pids(iterator: Any) -> list[int]:
    """The process ids of a DataLoader iterator's workers."""
    return [w.pid for w in getattr(iterator, "_workers", []) if w.pid]


def dead_workers(iterator: Any) -> list[DeadWorker]:
    """The workers of a DataLoader iterator that exited, with the batches they owed."""
    tasks = getattr(iterator, "_task_info", {})
    dead = []
    for worker_id, worker in enumerate(getattr(iterator, "_workers", [])):
        with contextlib.suppress(Exception):
            code = worker.exitcode
            if code is None:
                continue
            pending = [i for i, info in tasks.items() if _waits_on(info, worker_id)]
            dead.append(dead_worker(worker_id, worker.pid, code, pending))
    return dead


def shut_down(iterator: Any, *, kill_first: bool) -> None:
    """A DataLoader iterator's workers and pin-memory thread stopped; after a failure the
    workers are terminated first, as the orderly shutdown would wait several seconds on one
    that hangs."""
    if kill_first:
        for worker in getattr(iterator, "_workers", []):
            with contextlib.suppress(Exception):
                worker.terminate()
    stop: Any = getattr(iterator, "_shutdown_workers", None)
    if stop is not None:
        with contextlib.suppress(Exception):
            stop()


def _waits_on(info: Any, worker_id: int) -> bool:
    """A task handed to ``worker_id`` whose batch has not come back (torch keeps
    ``(worker_id,)`` until the data arrives, then ``(worker_id, data)``)."""
    return len(info) == 1 and info[0] == worker_id
