"""Workload: what the user gives (a Dataset or a DataLoader, a step, the epochs planned).

This is the one seam to user code. Everything that is not a worker knob (batch size, sampler or
shuffle, collate_fn, drop_last, worker_init_fn, generator) comes from here and stays fixed while
the worker knobs (:class:`LoaderConfig`) vary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadertune.engine.device import AUTO, check_choice
from loadertune.engine.loaderclass import LoaderClass, is_json_scalar, loader_class
from loadertune.engine.loaderlike import refuse_loader_like
from loadertune.engine.probe import IndexRecorder, ProbedCollate
from loadertune.records import defaults
from loadertune.records.config import LoaderConfig

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


Step = Callable[[Any], Any]


@dataclass
class Workload:
    """A dataset or DataLoader, an optional training step, and the epochs the user plans.

    Give a ``Dataset`` (batched with ``batch_size``, default 64, shuffled) or a ``DataLoader``
    (its batch size, sampler, collate_fn, drop_last, worker_init_fn and generator are kept; only
    the worker knobs vary). ``step(batch)`` is the user's training step, run on every batch.
    ``epochs`` is how many epochs the real job runs (used to amortise worker startup).
    A dataset without ``__len__`` is measured over ``batch_budget`` batches instead of an epoch.
    ``device`` is where the step runs: ``"auto"`` (CUDA once torch has initialised it, as a
    model moved to a GPU does), ``"cuda"`` or ``"cpu"``; on CUDA the clocks stop after a
    synchronize and the GPU's idle time between steps is measured.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> w = Workload(TensorDataset(torch.zeros(100, 3)), batch_size=10)
    >>> w.epoch_batches()
    10
    """

    data: Any
    step: Step | None = None
    batch_size: int | None = None
    shuffle: bool = True
    epochs: int = 1
    batch_budget: int = defaults.BATCH_BUDGET
    name: str = ""
    device: str = defaults.DEVICE
    _base: dict[str, Any] = field(init=False, repr=False)
    _class: LoaderClass = field(init=False, repr=False)
    _made: dict[str, type] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from torch.utils.data import DataLoader

        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs!r}")
        if self.batch_budget < 1:
            raise ValueError(f"batch_budget must be >= 1, got {self.batch_budget!r}")
        check_choice(self.device)
        _refuse_empty(self.data.dataset if isinstance(self.data, DataLoader) else self.data)
        if isinstance(self.data, DataLoader):
            self._base = _base_from_loader(self.data, self.batch_size)
            self._class = loader_class(self.data, self._base)
        else:
            self._base = self._base_from_dataset()
            self._class = LoaderClass(DataLoader)
        self._made = self._class.made_samplers(self.dataset)
        batching = self._base.get("batch_size") is not None
        refuse_loader_like(self.dataset, batching=batching)
        if not self.name:
            self.name = type(self.dataset).__name__
        self._check_not_empty()

    def _check_not_empty(self) -> None:
        """A batch size that leaves no batch is bad input (an empty dataset was refused before)."""
        if self.is_iterable:
            return
        try:
            samples = len(self.dataset)
        except TypeError:
            return
        if self.epoch_batches() == 0:
            raise ValueError(
                f"no batch: batch size {self._batch_size_shown()} with drop_last=True "
                f"leaves nothing from {samples} samples"
            )

    @property
    def dataset(self) -> Any:
        """The dataset, whether given bare or inside a DataLoader."""
        return self._base["dataset"]

    @property
    def is_iterable(self) -> bool:
        """True for an IterableDataset (no indices, no sampler)."""
        return _is_iterable(self.dataset)

    def distribute(self, rank: int, world_size: int) -> str | None:
        """Run as rank ``rank`` of ``world_size`` does in a DDP job: a Dataset given bare is
        sharded with a ``DistributedSampler`` (shuffled as asked); a DataLoader keeps its own
        sampler, and the warning returned says so when that sampler is not distributed (every
        rank then reads the whole dataset); an iterable dataset splits itself, or does not."""
        from torch.utils.data import BatchSampler, DistributedSampler

        if self.is_iterable:
            return None
        if self._given_loader:
            sampler = self._base.get("batch_sampler")
            inner = getattr(sampler, "sampler", self._base.get("sampler"))
            if isinstance(inner, DistributedSampler):
                return None
            return (
                f"{world_size} ranks, and the DataLoader's sampler is a {type(inner).__name__}, "
                "not a DistributedSampler: every rank reads the whole dataset (as your job does, "
                "if it builds the loader the same way)"
            )
        shard: DistributedSampler[Any] = DistributedSampler(
            self.data, world_size, rank, shuffle=self.shuffle
        )
        batch_size = self.batch_size or defaults.BATCH_SIZE
        self._base["batch_sampler"] = BatchSampler(shard, batch_size, drop_last=False)
        return None

    def baseline_config(self) -> LoaderConfig:
        """The worker knobs of the user's own DataLoader, or ``num_workers=0`` for a Dataset."""
        return _config_of(self.data) if self._given_loader else LoaderConfig()

    def build_loader(
        self, config: LoaderConfig, recorder: IndexRecorder | None = None
    ) -> DataLoader[Any]:
        """A DataLoader with the workload's fixed settings, ``config``'s knobs and our probes.

        Batches come out as :class:`ProbedBatch`; with ``recorder`` the sampler's output is
        recorded (map-style datasets only).
        """
        kwargs = dict(self._base)
        kwargs["collate_fn"] = ProbedCollate(kwargs["collate_fn"])
        if recorder is not None and not self.is_iterable:
            key = "batch_sampler" if kwargs.get("batch_sampler") is not None else "sampler"
            recorder.inner = kwargs[key]
            kwargs[key] = recorder
        built: DataLoader[Any] = self._class.build(**kwargs, **config.to_kwargs())
        return built

    def epoch_batches(self) -> int | None:
        """Batches in one epoch, or None when the dataset has no length."""
        try:
            return len(self._class.probe(**self._base))
        except TypeError:
            return None

    def facts(self) -> dict[str, Any]:
        """JSON-ready description of the workload, for results."""
        try:
            samples: int | None = len(self.dataset)
        except TypeError:
            samples = None
        return {
            "name": self.name,
            "dataset_type": type(self.dataset).__qualname__,
            "given": "DataLoader" if self._given_loader else "Dataset",
            "samples": samples,
            "iterable": self.is_iterable,
            "batch_size": self._batch_size_shown(),
            "loader_class": self._class.name,
            "loader_fallback": self._class.fallback,
            "loader_kwargs": self.fixed_kwargs(),
            "keep_your_own": self.keep_your_own(),
            "epoch_batches": self.epoch_batches(),
            "batch_budget": self.batch_budget,
            "step": _callable_name(self.step),
            "epochs": self.epochs,
            **({"device": self.device} if self.device != AUTO else {}),
        }

    def fixed_kwargs(self) -> dict[str, Any]:
        """The JSON-able settings that stay fixed, for ``DataLoader(dataset, **fixed, **config)``:
        batch_size, shuffle and drop_last, unless a custom (batch) sampler replaces them.
        What cannot travel in JSON is named by :meth:`keep_your_own`."""
        own = self.keep_your_own()
        extras = {k: v for k, v in self._class.given_extras().items() if is_json_scalar(v)}
        if "batch_sampler" in own:  # DataLoader takes none of the three beside a batch sampler
            return extras
        sampler = self._base.get("batch_sampler")
        fixed: dict[str, Any] = {"batch_size": self._batch_size_shown()}
        inner = getattr(sampler, "sampler", self._base.get("sampler"))
        if not self.is_iterable and "sampler" not in own:  # shuffle and sampler exclude
            fixed["shuffle"] = self._is_made(inner, "random")
        fixed["drop_last"] = bool(getattr(sampler, "drop_last", self._base.get("drop_last")))
        return {**fixed, **extras}

    def keep_your_own(self) -> list[str]:
        """The user's own DataLoader settings that a result cannot carry (objects, not values):
        pass them again beside ``loader_kwargs``."""
        from torch.utils.data._utils.collate import default_collate, default_convert

        base = self._base
        own = []
        batch_sampler = base.get("batch_sampler")
        if batch_sampler is not None and not self._is_made(batch_sampler, "batch"):
            own.append("batch_sampler")
        inner = getattr(batch_sampler, "sampler", base.get("sampler"))
        if "batch_sampler" not in own and inner is not None and not self._is_plain(inner):
            own.append("sampler")
        if base.get("collate_fn") not in (default_collate, default_convert):
            own.append("collate_fn")
        own += [k for k in ("worker_init_fn", "generator") if base.get(k) is not None]
        extras = self._class.given_extras()
        own += [k for k, v in extras.items() if not is_json_scalar(v)]
        return own

    def _is_made(self, sampler: Any, kind: str) -> bool:
        """Whether ``sampler`` is of the class the loader's class makes by itself as ``kind``
        (``random`` for shuffle=True, ``sequential``, ``batch``): not the user's own."""
        return type(sampler) is self._made[kind]

    def _is_plain(self, sampler: Any) -> bool:
        return (
            self._is_made(sampler, "random")
            or self._is_made(sampler, "sequential")
            or type(sampler).__name__ == "_InfiniteConstantSampler"
        )

    def loader(self, config: LoaderConfig) -> DataLoader[Any]:
        """A loader of the user's class (torch's DataLoader for a Dataset) with the workload's
        settings and ``config``'s knobs: what the user would build with the pick (no probes)."""
        built: DataLoader[Any] = self._class.build(**self._base, **config.to_kwargs())
        return built

    @property
    def loader_class(self) -> LoaderClass:
        """The class trials are built with, its extra arguments, and why it fell back."""
        return self._class

    @property
    def _given_loader(self) -> bool:
        from torch.utils.data import DataLoader

        return isinstance(self.data, DataLoader)

    def _batch_size_shown(self) -> int | None:
        sampler = self._base.get("batch_sampler")
        return self._base.get("batch_size") or getattr(sampler, "batch_size", None)

    def _base_from_dataset(self) -> dict[str, Any]:
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler
        from torch.utils.data._utils.collate import default_collate

        batch_size = self.batch_size or defaults.BATCH_SIZE
        base: dict[str, Any] = {"dataset": self.data, "collate_fn": default_collate}
        if _is_iterable(self.data):
            base["batch_size"] = batch_size
            return base
        sampler_cls = RandomSampler if self.shuffle else SequentialSampler
        base["batch_sampler"] = BatchSampler(sampler_cls(self.data), batch_size, drop_last=False)
        return base


def _refuse_empty(dataset: Any) -> None:
    try:
        empty = len(dataset) == 0
    except TypeError:
        return
    if empty:
        raise ValueError("the dataset is empty (len 0): there is nothing to measure")


def _is_iterable(dataset: Any) -> bool:
    from torch.utils.data import IterableDataset

    return isinstance(dataset, IterableDataset)


def _base_from_loader(loader: DataLoader[Any], batch_size: int | None) -> dict[str, Any]:
    """The settings of ``loader`` that stay fixed; ``batch_size`` (if given) overrides its own."""
    from torch.utils.data import BatchSampler

    base: dict[str, Any] = {
        "dataset": loader.dataset,
        "collate_fn": loader.collate_fn,
        "worker_init_fn": loader.worker_init_fn,
        "generator": loader.generator,
    }
    if _is_iterable(loader.dataset):
        base["batch_size"] = batch_size or loader.batch_size
        base["drop_last"] = loader.drop_last
    elif loader.batch_sampler is None:
        base["batch_size"] = None
        base["sampler"] = loader.sampler
    elif batch_size is not None:  # the same batch sampler class, with the size asked for
        given = loader.batch_sampler
        cls = type(given) if isinstance(given, BatchSampler) else BatchSampler
        base["batch_sampler"] = cls(loader.sampler, batch_size, loader.drop_last)
    else:
        base["batch_sampler"] = loader.batch_sampler
    return base


def _config_of(loader: DataLoader[Any]) -> LoaderConfig:
    """The worker knobs a DataLoader was built with."""
    context = loader.multiprocessing_context
    workers = loader.num_workers
    return LoaderConfig(
        num_workers=workers,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=loader.persistent_workers,
        pin_memory=loader.pin_memory,
        multiprocessing_context=context.get_start_method() if context is not None else None,
        in_order=getattr(loader, "in_order", True),
    )


def _callable_name(fn: Any) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__
