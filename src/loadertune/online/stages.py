"""The config loaders of one online DataLoader: built on demand from the user's own settings, fed
through an :class:`Outlet`, kept while persistent (a return to that config starts no workers),
shut down when retired otherwise, and all shut down when the online loader is done."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loadertune.engine.backends.dataloader import shut_down, worker_pids
from loadertune.engine.harness import share_temp_dir
from loadertune.engine.heard import MORE_WORKERS_THAN_CPUS
from loadertune.engine.memwatch import MemoryWatch, WatchPlan
from loadertune.engine.probe import ProbedCollate
from loadertune.online.feed import Feed, Outlet
from loadertune.online.relay import Stage
from loadertune.records.config import LoaderConfig

HANG_TIMEOUT_S = 120.0  # a config's worker with no batch for this long is taken as hung (torch
# raises its timeout, and the online loader falls back); the user's own timeout= wins


@dataclass(frozen=True)
class Settings:
    """What the user's loader fixes, whatever the config: the dataset, how it is batched and
    collated, the worker hooks. ``auto_collation``: the batch sampler is the index source (else
    the sampler's single indices, ``batch_size=None``)."""

    dataset: Any
    auto_collation: bool
    iterable: bool
    batch_size: int | None
    drop_last: bool
    collate_fn: Callable[[Any], Any]
    worker_init_fn: Callable[[int], None] | None
    timeout: float
    pin_memory_device: str
    max_memory_bytes: int | None = None  # a config whose tree passes this is retired


@dataclass
class _Built:
    loader: Any
    outlet: Outlet
    iterator: Any = None
    busy: bool = False  # a stage of it is active or retiring
    watch: MemoryWatch | None = None  # the memory limit, watched while a stage of it runs

    def stop_watching(self) -> None:
        if self.watch is not None:
            self.watch.stop()
            self.watch = None

    def shut_down(self, *, kill_first: bool) -> None:
        self.stop_watching()
        shut_down(self.iterator, kill_first=kill_first)


@dataclass
class StagePool:
    """Config loaders by config; ``seed`` seeds each one's private generator, so building one
    never draws from the user's generator or torch's global RNG (the shuffle order stays the
    one torch's loader would give)."""

    settings: Settings
    seed: int
    built: dict[LoaderConfig, _Built] = field(default_factory=dict)
    _all: list[_Built] = field(default_factory=list)  # every loader built, to find a stage's
    _kill_on_end: bool = False  # see collected()

    def start(self, config: LoaderConfig, feed: Feed) -> Stage:
        """A stage of ``config`` pulling from ``feed`` from its next position on (an iterable
        dataset's loader reads the dataset itself: its stage is the whole epoch)."""
        built = self.built.get(config)
        if built is None or built.busy:  # a loader still delivering a stage is not reset
            built = self._build(config)
        built.busy = True
        tap = feed.tap()
        built.outlet.plug(tap)
        stage = Stage(config, iter(()), tap, on_end=self._ended)
        watch = self._watch(config, feed, stage)
        with _quiet():
            built.iterator = iter(built.loader)  # a persistent loader resets its own iterator
        stage.iterator = built.iterator
        if watch is not None:
            watch.start(lambda _: None, pids=lambda: _tree_pids(built.iterator))
        built.watch = watch
        return stage

    def over_limit(self, stage: Stage) -> str | None:
        """Why ``stage``'s config passed the memory limit (None: it did not, or no limit)."""
        if self.settings.max_memory_bytes is None:
            return None
        built = self._owner(stage)
        return built.watch.stopped if built is not None and built.watch is not None else None

    def _watch(self, config: LoaderConfig, feed: Feed, stage: Stage) -> MemoryWatch | None:
        """The memory limit's watch of a stage with workers, armed before they start."""
        limit = self.settings.max_memory_bytes
        if limit is None or not config.num_workers:
            return None
        batches = (feed.left or 0) + config.in_flight_batches
        watch = MemoryWatch(
            WatchPlan(limit, batches, config.in_flight_batches), lambda: stage.delivered
        )
        watch.arm(None)
        return watch

    def close(self, *, kill_first: bool = False) -> None:
        """Every worker of every config loader stopped (``kill_first``: terminated, then
        joined; see :meth:`collected`)."""
        for built in self._all:
            built.shut_down(kill_first=kill_first)
            built.iterator = None
        self.built.clear()
        self._all.clear()

    def keep_only(self, config: LoaderConfig) -> None:
        """Every idle loader of another config shut down (the search settled on ``config``:
        workers kept for a return that will not come only hold memory)."""
        for built in [b for b in self._all if not b.busy and b is not self.built.get(config)]:
            built.shut_down(kill_first=False)
            self._all.remove(built)
        self.built = {c: b for c, b in self.built.items() if b in self._all}

    def discard(self, stage: Stage) -> None:
        """A stage whose loader broke: its workers killed, its loader never used again."""
        built = self._owner(stage)
        if built is None:
            return
        built.shut_down(kill_first=True)
        self._all.remove(built)
        if self.built.get(stage.config) is built:
            del self.built[stage.config]

    @contextlib.contextmanager
    def collected(self) -> Iterator[None]:
        """Stages ended inside are shut down by terminating their workers first: an object
        being collected may sit in a reference cycle (an exception's traceback holds the
        loop's frames), whose pipes the collector may have closed already, so the workers
        never hear the orderly stop and torch waits 5 s on each before terminating it."""
        self._kill_on_end = True
        try:
            yield
        finally:
            self._kill_on_end = False

    def _ended(self, stage: Stage) -> None:
        built = self._owner(stage)
        if built is None:
            return
        built.busy = False
        built.stop_watching()
        if not stage.config.persistent_workers or self.built.get(stage.config) is not built:
            built.shut_down(kill_first=self._kill_on_end)
            self._all.remove(built)
            if self.built.get(stage.config) is built:
                del self.built[stage.config]

    def _owner(self, stage: Stage) -> _Built | None:
        return next((b for b in self._all if b.iterator is stage.iterator), None)

    def _build(self, config: LoaderConfig) -> _Built:
        import torch
        from torch.utils.data import DataLoader

        s, outlet = self.settings, Outlet()
        if config.num_workers:
            share_temp_dir()  # one folder for every worker, removed with this process
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        with _quiet():
            loader = DataLoader(
                s.dataset,
                **index_source(s, outlet),
                collate_fn=ProbedCollate(s.collate_fn),
                worker_init_fn=s.worker_init_fn,
                timeout=(s.timeout or HANG_TIMEOUT_S) if config.num_workers else 0,
                generator=generator,
                pin_memory_device=s.pin_memory_device,
                **config.to_kwargs(),
            )
        built = _Built(loader, outlet)
        self._all.append(built)
        if config not in self.built or self.built[config].busy:
            self.built[config] = built
        return built


def index_source(settings: Settings, indices: Any) -> dict[str, Any]:
    """How a loader of ``settings`` reads ``indices``: as its batch sampler (automatic
    batching), as its sampler (single indices), or not at all (an iterable dataset, batched
    by the loader itself)."""
    if settings.iterable:
        return {"batch_size": settings.batch_size, "drop_last": settings.drop_last}
    if settings.auto_collation:
        return {"batch_sampler": indices, "batch_size": 1}
    return {"sampler": indices, "batch_size": None}


def _tree_pids(iterator: Any) -> list[int]:
    """This process and the workers of ``iterator`` (their page faults bound the growth)."""
    return [os.getpid(), *worker_pids(iterator)]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without torch's warning on more workers than CPUs: trying counts is the search's job
    (the warning would repeat at every stretch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=MORE_WORKERS_THAN_CPUS, category=UserWarning)
        yield
