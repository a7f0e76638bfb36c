"""What an online loader did, as a :class:`~loadertune.Result` like ``tune``'s: every stretch a
trial, ``best`` the config it runs, the pick's reason; and the facts its cache key is made of."""

from __future__ import annotations

from typing import Any

from loadertune.analysis.document import analyse
from loadertune.online.search import Autotune
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Result


def workload_facts(loader: Any) -> dict[str, Any]:
    """What decides the pick: the dataset's type and length, the batching and collate, the
    knobs the user fixed, the usable CPUs and torch's version."""
    import torch

    from loadertune.engine.machine import usable_cpus

    samples, share = _length(loader.dataset), _length(loader.sampler)
    return {
        "dataset_type": type(loader.dataset).__qualname__,
        "samples": samples,
        "samples_here": share,  # this rank's share, under a DistributedSampler
        "ranks": loader._rank_facts,  # a pick made alone is not one for 4 ranks
        "batch_size": loader.batch_size,
        "sampler": type(loader.sampler).__qualname__,
        "batch_sampler": type(loader.batch_sampler).__qualname__,
        "drop_last": loader.drop_last,
        "collate_fn": getattr(loader.collate_fn, "__qualname__", type(loader.collate_fn).__name__),
        "fixed": loader.knobs.fixed(cuda=False),
        "epochs": loader.epochs,
        "sample": _sample_shape(loader),
        "usable_cpus": usable_cpus().usable,
        "torch": torch.__version__,
    }


def _length(sized: Any) -> int | None:
    try:
        return len(sized)
    except TypeError:
        return None


def _sample_shape(loader: Any) -> Any:
    """The first sample's structure (types, shapes, dtypes): two datasets of one class and
    length but other contents get other keys. None for a stream or a sample that fails."""
    from torch.utils.data import IterableDataset

    if isinstance(loader.dataset, IterableDataset):
        return None
    try:
        return _shape(loader.dataset[0])
    except Exception:  # noqa: BLE001 - the key does without it; the loop will raise it again
        return None


def _shape(obj: Any) -> Any:
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return [type(obj).__name__, list(obj.shape), str(obj.dtype)]
    if isinstance(obj, dict):
        return {str(k): _shape(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_shape(v) for v in obj]
    return type(obj).__name__


def tuning_result(loader: Any, search: Autotune | None, pick: LoaderConfig | None = None) -> Result:
    """Every stretch of every epoch as a trial (the search's judged snapshots first), the
    running config as the pick (``pick``: the one rank 0's search gave, on another rank)."""
    from loadertune.engine.machine import machine_facts

    facts = loader._workload_facts()
    trials = [t for epoch in loader.stages for t in epoch]
    result = Result(
        machine=machine_facts().to_dict(),
        workload={
            **facts,
            "name": f"online {facts['dataset_type']}",
            "epoch_batches": trials[0].epoch_batches if trials else None,
            "loader_kwargs": {"batch_size": loader.batch_size, "drop_last": loader.drop_last},
            "step": "the training loop (online)",
        },
        settings={"online": True, "epochs": loader.epochs},
        trials=trials,
        pick=pick,
    )
    if search is not None:
        ran = {t.config for t in trials}
        settled = search.settled.chosen.config if search.settled else None
        result.pick = search.running if search.running in ran or settled is None else settled
        result.tuning = _tuning(search)
    return analyse(result)


def _tuning(search: Autotune) -> dict[str, Any]:
    settled = search.settled
    return {
        "strategy": "online",
        "pick": search.running.to_kwargs() if search.running else None,
        "settled": settled is not None,
        "reason": settled.reason if settled else "still searching",
        "stretches_judged": len(search.trials),
        "lost_s": round(search.lost_s, 4),
    }
