"""The config loaders of one online DataLoader: built on demand from the user's own settings, fed
through an :class:`Outlet`, kept while persistent (a return to that config starts no workers),
shut down when retired otherwise, and all shut down when the online loader is done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadertune.engine.backends.dataloader import shut_down
from loadertune.engine.probe import ProbedCollate
from loadertune.online.feed import Feed, Outlet
from loadertune.online.relay import Stage
from loadertune.records.config import LoaderConfig


@dataclass(frozen=True)
class Settings:
    """What the user's loader fixes, whatever the config: the dataset, how it is batched and
    collated, the worker hooks. ``auto_collation``: the batch sampler is the index source (else
    the sampler's single indices, ``batch_size=None``)."""

    dataset: Any
    auto_collation: bool
    collate_fn: Callable[[Any], Any]
    worker_init_fn: Callable[[int], None] | None
    timeout: float
    pin_memory_device: str


@dataclass
class _Built:
    loader: Any
    outlet: Outlet
    iterator: Any = None


@dataclass
class StagePool:
    """Config loaders by config; ``seed`` seeds each one's private generator, so building one
    never draws from the user's generator or torch's global RNG (the shuffle order stays the
    one torch's loader would give)."""

    settings: Settings
    seed: int
    built: dict[LoaderConfig, _Built] = field(default_factory=dict)

    def start(self, config: LoaderConfig, feed: Feed) -> Stage:
        """A stage of ``config`` pulling from ``feed`` from its next position on."""
        built = self.built.get(config) or self._build(config)
        tap = feed.tap()
        built.outlet.plug(tap)
        built.iterator = iter(built.loader)  # a persistent loader resets its own iterator
        return Stage(config, built.iterator, tap, on_end=self._ended)

    def close(self) -> None:
        """Every worker of every config loader stopped."""
        for built in self.built.values():
            shut_down(built.iterator, kill_first=False)
            built.iterator = None
        self.built.clear()

    def _ended(self, stage: Stage) -> None:
        if not stage.config.persistent_workers:
            built = self.built.pop(stage.config, None)
            if built is not None:
                shut_down(built.iterator, kill_first=False)

    def _build(self, config: LoaderConfig) -> _Built:
        import torch
        from torch.utils.data import DataLoader

        s, outlet = self.settings, Outlet()
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        source: dict[str, Any] = (
            {"batch_sampler": outlet, "batch_size": 1}
            if s.auto_collation
            else {"sampler": outlet, "batch_size": None}
        )
        loader = DataLoader(
            s.dataset,
            **source,
            collate_fn=ProbedCollate(s.collate_fn),
            worker_init_fn=s.worker_init_fn,
            timeout=s.timeout,
            generator=generator,
            pin_memory_device=s.pin_memory_device,
            **config.to_kwargs(),
        )
        built = _Built(loader, outlet)
        self.built[config] = built
        return built
