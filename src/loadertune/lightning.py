"""Lightning: :class:`DataLoaderTuner`, a callback that tunes the training loader while the fit
trains, every tuning batch a real training step.

Where the fit asks for its training loaders (each time it asks: the first epoch, and each reload
``reload_dataloaders_every_n_epochs`` makes), every plain torch ``DataLoader`` it gets is rebuilt
as a :class:`loadertune.DataLoader` from the same dataset, sampler, collate and the rest
(:func:`~loadertune.online.adopt.from_loader`), before Lightning injects its
``DistributedSampler`` into it; a ``loadertune.DataLoader`` the module returns is used as it is.
The search runs during the first ``tune_epochs`` epochs (under DDP, rank 0 deciding for every
rank); then the fit trains on the pick, which goes to the trainer's loggers.

Works with ``lightning.pytorch`` or ``pytorch_lightning`` (2.0 or newer), whichever is installed:
``pip install 'loadertune[lightning]'``.
"""

from __future__ import annotations

import importlib
import math
import warnings
import weakref
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from loadertune.online.adopt import from_loader
from loadertune.online.loader import DataLoader
from loadertune.records.errors import LoadertuneWarning
from loadertune.records.result import Result

INSTALL = "pip install 'loadertune[lightning]'"


def _lightning() -> ModuleType:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"loadertune.lightning needs Lightning: {INSTALL}")


pl = _lightning()


class DataLoaderTuner(pl.Callback):  # type: ignore[misc, name-defined]
    """Tunes the fit's training loaders (and, with ``tune_val``, its validation loaders) while
    it trains: ``Trainer(callbacks=[DataLoaderTuner()])``.

    ``tune_epochs``: the epochs the search may take (None: as long as it judges worth it over
    the fit); ``epochs``: how long the fit runs (default: ``max_epochs``, or fewer where
    ``max_steps`` ends it first); ``keep``: worker knobs kept as your loader has them (e.g.
    ``("pin_memory",)``); ``in_order`` and ``multiprocessing_context``: ``"auto"`` lets them be
    tuned (default: kept as your loader's); ``cache`` and ``max_memory`` as for
    :class:`loadertune.DataLoader`.

    After the fit (or from ``on_train_epoch_end`` on), :attr:`result` is what the search
    measured and chose, as a :class:`~loadertune.Result`; None where no loader was tuned (a
    ``DataLoader`` subclass of yours, left alone).
    """

    def __init__(
        self,
        *,
        tune_epochs: int | None = 1,
        epochs: int | None = None,
        tune_val: bool = False,
        keep: Iterable[str] = (),
        in_order: bool | str | None = None,
        multiprocessing_context: Any = None,
        cache: bool = True,
        max_memory: int | None = None,
    ) -> None:
        super().__init__()
        if tune_epochs is not None and tune_epochs < 1:
            raise ValueError(f"tune_epochs must be >= 1 or None, got {tune_epochs!r}")
        self.tune_epochs, self.epochs, self.tune_val = tune_epochs, epochs, tune_val
        self._options: dict[str, Any] = {  # from_loader's, beside the fit's epochs
            "keep": tuple(keep),
            "in_order": in_order,
            "multiprocessing_context": multiprocessing_context,
            "cache": cache,
            "max_memory": max_memory,
        }
        self.train_loaders: list[DataLoader] = []
        self.val_loaders: list[DataLoader] = []
        self._sources: list[Any] = []
        self._logged: weakref.WeakSet[DataLoader] = weakref.WeakSet()  # an id could recur
        self._val_runs = 0

    @property
    def result(self) -> Result | None:
        """The (first) training loader's :attr:`~loadertune.DataLoader.tuning`; None where
        none of the fit's training loaders is ours (or none has run a batch yet)."""
        return next((r for r in self.results if r is not None), None)

    @property
    def results(self) -> list[Result | None]:
        """Each of the fit's training loaders' tuning (as of the last epoch started)."""
        return [loader.tuning for loader in self.train_loaders]

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        self._intercept(_source(trainer.fit_loop), trainer)
        if self.tune_val:
            self._intercept(_source(trainer.fit_loop.epoch_loop.val_loop), trainer)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        # the loaders as Lightning runs them: its distributed sampler injected, a reload's
        self.train_loaders = _ours_in(trainer.train_dataloader)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        for loader in self.train_loaders:
            loader.end_epoch(cut=True)  # Lightning never asks past its epoch's last batch
        if self.tune_epochs is not None and trainer.current_epoch + 1 == self.tune_epochs:
            _conclude(self.train_loaders)
        self._log(trainer, self.train_loaders, "")

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.tune_val and not trainer.sanity_checking:
            self.val_loaders = _ours_in(trainer.val_dataloaders)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.val_loaders or trainer.sanity_checking:
            return
        self._val_runs += 1
        for loader in self.val_loaders:
            loader.end_epoch(cut=True)
        if self.tune_epochs is not None and self._val_runs == self.tune_epochs:
            _conclude(self.val_loaders)
        self._log(trainer, self.val_loaders, "val/")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self._close()

    def _intercept(self, source: Any, trainer: Any) -> None:
        """From now on, the plain torch loaders ``source`` gives come rebuilt as ours."""
        asked = source.dataloader

        def dataloader() -> Any:
            return _rebuilt(asked(), lambda loader: self._ours_for(loader, trainer))

        source.dataloader = dataloader  # an attribute of this one source, undone at teardown
        self._sources.append(source)

    def _ours_for(self, loader: Any, trainer: Any) -> Any:
        from torch.utils.data import DataLoader as TorchDataLoader

        if isinstance(loader, DataLoader) or not isinstance(loader, TorchDataLoader):
            return loader
        if type(loader) is not TorchDataLoader:
            warnings.warn(
                f"DataLoaderTuner left {type(loader).__name__} alone: a subclass of DataLoader "
                "may rely on its own class (loadertune.DataLoader can be returned instead)",
                LoadertuneWarning,
                stacklevel=2,
            )
            return loader
        epochs = self.epochs or fit_epochs(trainer, loader)
        return from_loader(loader, epochs=epochs, **self._options)

    def _log(self, trainer: Any, loaders: list[DataLoader], kind: str) -> None:
        """Each loader's pick, once it has settled, to the trainer's loggers (global rank 0)."""
        if not trainer.is_global_zero:
            return
        for index, loader in enumerate(loaders):
            metrics = None if loader in self._logged else _pick_metrics(loader)
            if metrics is None:
                continue
            self._logged.add(loader)
            prefix = f"loadertune/{kind}{index}/" if index else f"loadertune/{kind}"
            for logger in trainer.loggers:
                logger.log_metrics({prefix + k: v for k, v in metrics.items()}, trainer.global_step)

    def _close(self) -> None:
        for loader in (*self.train_loaders, *self.val_loaders):
            loader.close()
        for source in self._sources:
            vars(source).pop("dataloader", None)
        self._sources.clear()


def fit_epochs(trainer: Any, loader: Any) -> int | None:
    """The epochs the fit will run ``loader``: ``max_epochs``, or fewer where ``max_steps``
    ends it first (steps count optimizer steps: ``accumulate_grad_batches`` batches each)."""
    epochs: int | None = int(trainer.max_epochs) if (trainer.max_epochs or 0) > 0 else None
    steps: int | None = int(trainer.max_steps) if (trainer.max_steps or 0) > 0 else None
    try:
        batches = len(loader)
    except TypeError:
        return epochs
    if steps is None or not batches:
        return epochs
    by_steps = math.ceil(steps * int(trainer.accumulate_grad_batches) / batches)
    return min(epochs, int(by_steps)) if epochs else int(by_steps)


def _source(loop: Any) -> Any:
    """Where ``loop`` asks for its loaders (a private part of Lightning, 2.0 and newer)."""
    source = getattr(loop, "_data_source", None)
    if source is None or not callable(getattr(source, "dataloader", None)):
        raise RuntimeError(
            f"DataLoaderTuner does not know this Lightning ({pl.__name__} {pl.__version__}): "
            f"its {type(loop).__name__} has no data source to ask; Lightning 2.0 or newer "
            "is needed"
        )
    return source


def _rebuilt(loaders: Any, rebuild: Callable[[Any], Any]) -> Any:
    """``loaders`` as the source gave them (one, a list, tuple or dict of them, or a
    ``CombinedLoader``), each loader passed through ``rebuild``."""
    if isinstance(loaders, list | tuple):
        return type(loaders)(_rebuilt(item, rebuild) for item in loaders)
    if isinstance(loaders, dict):
        return {key: _rebuilt(item, rebuild) for key, item in loaders.items()}
    if hasattr(loaders, "flattened"):  # a CombinedLoader
        loaders.flattened = [_rebuilt(item, rebuild) for item in loaders.flattened]
        return loaders
    return rebuild(loaders)


def _ours_in(loaders: Any) -> list[DataLoader]:
    """The loaders of ours among ``loaders`` (one, a collection, or a ``CombinedLoader``)."""
    if isinstance(loaders, list | tuple):
        items: Iterable[Any] = loaders
    elif isinstance(loaders, dict):
        items = loaders.values()
    elif hasattr(loaders, "flattened"):
        items = loaders.flattened
    else:
        return [loaders] if isinstance(loaders, DataLoader) else []
    return [loader for item in items for loader in _ours_in(item)]


def _conclude(loaders: list[DataLoader]) -> None:
    """The epochs given to trying are over: each loader's search settles on its best."""
    for loader in loaders:
        if not loader.stages:
            continue
        controller = loader.controller
        conclude = getattr(controller, "conclude", None)
        if conclude is not None:
            conclude()
        loader.tell_if_settled()


def _pick_metrics(loader: DataLoader) -> dict[str, float] | None:
    """The settled pick's knobs and throughput as numbers; None while still searching."""
    result = loader.tuning
    if result is None or not (result.tuning or {}).get("settled") or result.best is None:
        return None
    best = result.best
    config = best.config
    metrics = {
        "num_workers": float(config.num_workers),
        "persistent_workers": float(bool(config.persistent_workers)),
        "pin_memory": float(bool(config.pin_memory)),
    }
    if config.prefetch_factor is not None and config.num_workers:
        metrics["prefetch_factor"] = float(config.prefetch_factor)
    rate = best.figure("samples_per_s")
    if rate is not None:
        metrics["samples_per_s"] = rate.median
    return metrics
