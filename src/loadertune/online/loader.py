"""``loadertune.DataLoader``: torch's DataLoader that picks its own worker knobs while the real
training runs.

Each epoch is the user's sampler's, drawn in the main process exactly as torch's loader draws it
(the same generator calls, in the same order), and handed out position by position to whichever
config loader is active (:mod:`feed`); a switch hands over what the retiring loader holds
(:mod:`relay`), so the user's loop sees the sampler's batches in its order, each once. Which
config runs is the search's (:mod:`search`); what it found is :attr:`DataLoader.tuning`.
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader as TorchDataLoader

from loadertune.engine.ranks import Ranks
from loadertune.online import cache
from loadertune.online.agreed import Agreed
from loadertune.online.control import Controller
from loadertune.online.feed import epoch_length
from loadertune.online.iterator import OnlineIterator
from loadertune.online.knobs import Knobs, TorchKnob
from loadertune.online.plain import PlainEpoch, plain_loader
from loadertune.online.report import tuning_result, workload_facts
from loadertune.online.search import MAX_ONLINE_WORKERS, Autotune, Space
from loadertune.online.stages import Settings, StagePool
from loadertune.online.stretch import steady_per_batch_s
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Result
from loadertune.records.trial import Trial

log = logging.getLogger("loadertune")


class DataLoader(TorchDataLoader):  # type: ignore[type-arg]
    """``torch.utils.data.DataLoader`` with the worker knobs you leave out chosen while your
    loop trains: ``num_workers``, ``prefetch_factor``, ``persistent_workers`` (and
    ``pin_memory`` where CUDA is present) when not given; ``in_order`` and
    ``multiprocessing_context`` only when you pass ``"auto"``, and an ``IterableDataset``'s
    ``num_workers`` too (each worker runs its ``__iter__``: pass ``"auto"`` once it splits
    itself by ``get_worker_info()``, as webdataset's and Hugging Face's do). A knob you give
    is kept; with every knob given it is torch's loader. ``epochs``: how many epochs your job
    runs (trying is weighed against it). ``cache``: start from (and keep) the pick made for
    this workload on this machine, under ``LOADERTUNE_CACHE_DIR`` (default
    ``~/.cache/loadertune``).
    ``max_memory``: bytes the main process and its workers may hold; a config whose memory
    passes it, or is heading past it by the epoch's end, is retired for the last good one, no
    batch lost (None, the default: no watch; a worker the system kills falls back alike).
    ``ranks``: under ``torch.distributed`` (``"auto"``: the job's process group, made before
    the first epoch) every rank runs the same config, rank 0's search deciding each switch on
    every rank's figures (see :mod:`~loadertune.online.agreed`): every rank must iterate
    the loader; pass None for one only some ranks use (it then tunes on each alone).

    >>> loader = loadertune.DataLoader(train_set, batch_size=64, shuffle=True, epochs=10)
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     for batch in loader:
    ...         train_step(batch)
    >>> loader.tuning.best.loader_kwargs  # doctest: +SKIP
    """

    # torch's values when read; vars() shows what was passed, so a loader re-created from its
    # attributes (as Lightning does) tunes again (see TorchKnob)
    num_workers = TorchKnob()
    prefetch_factor = TorchKnob()
    persistent_workers = TorchKnob()
    pin_memory = TorchKnob()
    in_order = TorchKnob()

    def __init__(  # noqa: PLR0917 - torch's signature, then ours
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int | str | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool | None = None,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool | None = None,
        pin_memory_device: str = "",
        in_order: bool | str = True,
        epochs: int | None = None,
        cache: bool = True,
        max_memory: int | None = None,
        ranks: Ranks | str | None = "auto",
        controller: Controller | None = None,
    ) -> None:
        from torch.utils.data import IterableDataset

        knobs = Knobs(
            num_workers,
            prefetch_factor,
            persistent_workers,
            pin_memory,
            multiprocessing_context,
            in_order,
            iterable=isinstance(dataset, IterableDataset),
        )
        super().__init__(
            dataset,
            batch_size,
            shuffle,
            sampler,
            batch_sampler,
            collate_fn=collate_fn,
            drop_last=drop_last,
            timeout=timeout,
            worker_init_fn=worker_init_fn,
            generator=generator,
            pin_memory_device=pin_memory_device,
            **knobs.torch_kwargs(),
        )
        vars(self).update(knobs.given())
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs!r}")
        if max_memory is not None and max_memory <= 0:
            raise ValueError(f"max_memory must be a number of bytes > 0, got {max_memory!r}")
        if ranks is not None and ranks != "auto" and not isinstance(ranks, Ranks):
            raise ValueError(f"ranks must be 'auto', None or a Ranks, got {ranks!r}")
        self.max_memory = max_memory
        self._ranks = ranks
        self.knobs, self.epochs, self.cache = knobs, epochs, cache
        self.stages: list[list[Trial]] = []
        self._cuda = _cuda()
        self._controller = controller
        self._pool: StagePool | None = None
        self._facts: dict[str, Any] | None = None
        self._told = False  # the settle was logged and cached
        self._plain: tuple[LoaderConfig, Any] | None = None  # a pick without workers, its loader
        self._last_epoch: weakref.ref[OnlineIterator | PlainEpoch] | None = None
        self._rank_facts: dict[str, int] | None = None  # under ranks: part of the cache key

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self._controller is None and self.knobs.all_given(self._cuda):
            return super().__iter__()
        self.end_epoch()
        controller = self.controller
        if isinstance(controller, Agreed):
            controller.meet(len(self.stages), epoch_length(self))
            self.tell_if_settled()
        epoch: OnlineIterator | PlainEpoch | None = self._plain_epoch()
        if epoch is None:
            seed = self._draw_base_seed()
            epoch = OnlineIterator(self, self._stage_pool(seed), len(self.stages))
        self._last_epoch = weakref.ref(epoch)
        return epoch

    def end_epoch(self, cut: bool = False) -> None:
        """The loop's epoch is over: one that took every batch but never asked past the last
        (Lightning's loops stop at the epoch's length) is told as ended whole now; with
        ``cut``, the loop's epoch ended before the sampler's (Lightning's
        ``limit_train_batches``), and what ran is told as the epoch. Also done (without
        ``cut``) as the next epoch starts; a loop that runs the loader out needs neither."""
        last = self._last_epoch() if self._last_epoch is not None else None
        if last is not None:
            last.end_if_handed_out(cut)

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            self._controller = self._agreed() or self._autotune()
        return self._controller

    @property
    def tuning(self) -> Result | None:
        """What the loader measured and chose, as a :class:`~loadertune.Result` (``best`` is
        the config it runs; ``trials`` one per stretch); None before the first epoch."""
        if not self.stages:
            return None
        agreed = self._controller if isinstance(self._controller, Agreed) else None
        return tuning_result(self, self._search(), agreed.running if agreed else None)

    def save_tuning(self, path: str | Path) -> None:
        """Write :attr:`tuning` as a result document (``loadertune show PATH`` renders it)."""
        from loadertune.analysis.document import save

        result = self.tuning
        if result is None:
            raise ValueError("nothing measured yet: iterate the loader first")
        save(result, path)

    def epoch_ended(self, stretch: Trial, epoch: int) -> None:
        """An epoch ran to its end on ``stretch``: the controller told (and, at the job's last
        planned epoch, asked to conclude), the pick said once it is made."""
        controller = self.controller
        controller.epoch_ended(stretch)
        if epoch + 1 == (self.epochs or 0) and hasattr(controller, "conclude"):
            controller.conclude()
        self.tell_if_settled()

    def tell_if_settled(self) -> None:
        """Once the search has settled: say so, and remember it (once per loader; under
        ranks, rank 0 does, and the others only let their idle loaders go)."""
        agreed = self._controller if isinstance(self._controller, Agreed) else None
        if not self._told and agreed is not None and agreed.search is None and agreed.done:
            self._told = True
            if self._pool is not None and agreed.running is not None:
                self._pool.keep_only(agreed.running)
        search = self._search()
        if self._told or search is None or search.settled is None:
            return
        self._told = True
        self.settled(search)

    def settled(self, search: Autotune) -> None:
        """The search chose: say so once, and remember it."""
        pick = search.settled
        if pick is None:
            return
        chosen = pick.chosen
        running = search.running or chosen.config
        began = f" (started from the cached {search.start.label()})" if search.start else ""
        log.info("%s settled on %s%s: %s", self._name(), running.label(), began, pick.reason)
        if self._pool is not None:
            self._pool.keep_only(running)
        if self.cache:
            facts = self._workload_facts()
            # past each stretch's first batch: a cold start and a warm one compare alike
            steady = [steady_per_batch_s(t) for t in chosen.trials if t.batches > 1]
            batch_s = min(steady) if steady else None
            remembered = cache.Remembered(running, batch_s, search.finished)
            cache.remember(cache.workload_key(facts), remembered, facts)

    def close(self) -> None:
        """Stop every config loader's workers now (also done when the loader is collected)."""
        if self._pool is not None:
            self._pool.close()

    def __del__(self) -> None:
        """Collected: every worker terminated, then joined (see ``StagePool.collected``)."""
        try:
            pool = getattr(self, "_pool", None)
            if pool is not None and not sys.is_finalizing():
                pool.close(kill_first=True)
        except Exception:  # noqa: BLE001, S110 - at exit, module names may be gone
            pass  # (multiprocessing then terminates the workers itself)

    def _plain_epoch(self) -> PlainEpoch | None:
        """An epoch the search runs whole on one config without workers (settled there, or a
        remembered pick to verify): torch's own (see :mod:`plain`), its stretch still told to
        the search (the other configs' idle workers stopped first)."""
        search = self.controller
        if not isinstance(search, Autotune | Agreed) or not search.plain_next():
            return None
        config = search.first(len(self.stages))
        if self._plain is None or self._plain[0] != config:
            self.close()
            self._plain = (config, plain_loader(self, self._settings(), config))
        trial = Trial(config, epoch_batches=epoch_length(self))
        epoch = len(self.stages)
        self.stages.append([trial])
        return PlainEpoch(self._plain[1], trial, lambda t: self.epoch_ended(t, epoch))

    def _search(self) -> Autotune | None:
        """The search deciding this loader's configs (under ranks, rank 0's; None on the
        others, and under a controller of the caller's)."""
        controller = self._controller
        if isinstance(controller, Agreed):
            return controller.search
        return controller if isinstance(controller, Autotune) else None

    def _agreed(self) -> Agreed | None:
        """Under ranks: every rank's controller agreeing over a group of ours, rank 0's with
        the search (see :mod:`agreed`); None in a process alone."""
        from loadertune.engine.ranks import joined

        ranks = joined() if self._ranks == "auto" else self._ranks
        if not isinstance(ranks, Ranks):
            return None
        self._rank_facts = {"world_size": ranks.world_size, "local": ranks.local_world_size}
        space = self._space()
        baseline = space.constrain(LoaderConfig()) or LoaderConfig()
        search = self._autotune(space, local_ranks=ranks.local_world_size) if ranks.leader else None
        return Agreed(ranks, search, baseline)

    def _space(self) -> Space:
        return Space(
            self.knobs.fixed(self._cuda),
            unordered_ok=self.knobs.in_order == "auto",
            cuda=self._cuda,
            start_methods=("forkserver",) if self.knobs.multiprocessing_context == "auto" else (),
        )

    def _autotune(self, space: Space | None = None, local_ranks: int = 1) -> Autotune:
        """The search; under ranks, on this rank's share of the CPUs (``local_ranks`` on
        this machine share them)."""
        from loadertune.engine.machine import usable_cpus

        space = space or self._space()
        remembered = (
            cache.recall(cache.workload_key(self._workload_facts())) if self.cache else None
        )
        batches = epoch_length(self)
        return Autotune(
            space,
            batches=batches,
            # a worker past the epoch's batches (a rank's share of them) has none to make
            max_workers=min(MAX_ONLINE_WORKERS, batches) if batches else MAX_ONLINE_WORKERS,
            epochs=self.epochs or 1,
            usable_cpus=max(usable_cpus().usable // max(local_ranks, 1), 1),
            start=remembered.config if remembered else None,
            # a pick from a search the job cut short is a start, not a verdict
            expected_batch_s=remembered.batch_s if remembered and remembered.finished else None,
        )

    def _workload_facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = workload_facts(self)
        return self._facts

    def _name(self) -> str:
        return f"DataLoader({type(self.dataset).__qualname__})"

    def _draw_base_seed(self) -> int:
        """What torch's loader draws from the generator as an epoch starts (its workers' base
        seed), drawn the same way, so the sampler's own draw that follows sees the same state."""
        import torch

        if self.persistent_workers and self.num_workers > 0 and self._pool is not None:
            return self._pool.seed  # torch's persistent iterator draws it once
        value = torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return int(value.item())

    def _stage_pool(self, seed: int) -> StagePool:
        if self._pool is None:
            self._pool = StagePool(self._settings(), seed)
        return self._pool

    def _settings(self) -> Settings:
        from torch.utils.data import IterableDataset

        return Settings(
            self.dataset,
            self._auto_collation,
            isinstance(self.dataset, IterableDataset),
            self.batch_size,
            self.drop_last,
            self.collate_fn,
            self.worker_init_fn,
            self.timeout,
            self.pin_memory_device,
            self.max_memory,
        )


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())
