"""A torch ``DataLoader`` someone else built, rebuilt as a :class:`~loadertune.DataLoader` that
tunes its worker knobs: the same dataset, the same sampler or batch sampler object (so a
``set_epoch`` call, as Lightning makes on a ``DistributedSampler``, reaches it), the same
batching, collate, worker_init_fn, generator and timeout; so each epoch yields the batches the
original would, in its order. The loader given is not touched (its workers, if running, are
its own)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadertune.online.knobs import AUTO
from loadertune.online.loader import DataLoader

TUNED = ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory")


def from_loader(
    loader: Any,
    *,
    keep: Iterable[str] = (),
    in_order: bool | str | None = None,
    multiprocessing_context: Any = None,
    **ours: Any,
) -> DataLoader:
    """``loader`` (a torch ``DataLoader``) as one of ours. Its worker knobs are tuned, except
    those named in ``keep`` (kept as ``loader`` has them); an iterable dataset's
    ``num_workers`` is kept always (every worker runs its ``__iter__``), as are ``in_order``
    and ``multiprocessing_context`` unless ``"auto"`` is passed for them. ``ours``: the online
    loader's own options (``epochs``, ``cache``, ``max_memory``, ``ranks``)."""
    unknown = set(keep) - set(TUNED)
    if unknown:
        raise ValueError(f"keep names knobs we tune ({', '.join(TUNED)}), not {sorted(unknown)}")
    knobs: dict[str, Any] = {n: getattr(loader, n) if n in keep else None for n in TUNED}
    if _iterable(loader):
        knobs["num_workers"] = loader.num_workers
    if knobs["num_workers"] == 0:  # torch refuses the others without workers
        knobs.update(prefetch_factor=None, persistent_workers=None)
    context = loader.multiprocessing_context if multiprocessing_context != AUTO else AUTO
    return DataLoader(
        loader.dataset,
        **_batching(loader),
        **knobs,
        collate_fn=loader.collate_fn,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=context,
        generator=loader.generator,
        pin_memory_device=loader.pin_memory_device,
        in_order=getattr(loader, "in_order", True) if in_order is None else in_order,
        **ours,
    )


def _batching(loader: Any) -> dict[str, Any]:
    """The arguments that make ``loader``'s batches: its sampler and batch size, or its batch
    sampler, or (an iterable dataset) its batch size alone."""
    if _iterable(loader):
        return {"batch_size": loader.batch_size, "drop_last": loader.drop_last}
    if loader.batch_size is not None:
        return {
            "batch_size": loader.batch_size,
            "sampler": loader.sampler,
            "drop_last": loader.drop_last,
        }
    if loader.batch_sampler is not None:
        return {"batch_sampler": loader.batch_sampler}
    return {"batch_size": None, "sampler": loader.sampler}  # sample by sample, no collation


def _iterable(loader: Any) -> bool:
    from torch.utils.data import IterableDataset

    return isinstance(loader.dataset, IterableDataset)
