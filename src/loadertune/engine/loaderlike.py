"""Datasets that are loaders already: they batch, or run a DataLoader of their own inside.

Measured as a dataset, such an object goes wrong in ways that hide the cause: its batches are
batched again ("input of size [24, 64, 3, 64, 64]"), and its inner DataLoader cannot start
workers inside ours ("daemonic processes are not allowed to have children"). So they are
refused before anything runs, with what to pass instead.
"""

from __future__ import annotations

from typing import Any

# How deep to look for a DataLoader inside a dataset's attributes: webdataset's WebLoader keeps
# it in a list one attribute down (``pipeline[0]``); deeper objects are the user's own business.
SEARCH_DEPTH = 2
SEARCH_ITEMS = 16  # items of a list looked at: a pipeline's stages, not a million file names
BATCHING_STAGES = ("_batched", "batched")  # webdataset's ``.batched(n)`` filter, by name


def refuse_loader_like(dataset: Any, *, batching: bool) -> None:
    """Raise ``ValueError`` naming what to pass instead when an iterable ``dataset`` is a
    loader already: it holds a DataLoader of its own, or (when ``batching``: the loader would
    batch it again) its pipeline ends in a batching stage. Map-style datasets pass."""
    from torch.utils.data import IterableDataset

    if not isinstance(dataset, IterableDataset):
        return
    kind = type(dataset).__name__
    if _holds_dataloader(dataset, SEARCH_DEPTH):
        raise ValueError(
            f"the {kind} runs a DataLoader of its own inside, whose workers cannot start in "
            f"loadertune's (nor would its knobs be the ones measured): pass the dataset it "
            f"wraps instead (for a webdataset WebLoader, the WebDataset pipeline before "
            f".batched(...), with --batch-size)"
        )
    if batching and _ends_batched(dataset):
        raise ValueError(
            f"the {kind} yields batches already (its pipeline ends in .batched(...)), and "
            f"would be batched again: pass it without .batched(...) and give --batch-size, or "
            f"pass DataLoader(pipeline, batch_size=None) as the target"
        )


def describe_iterable(obj: Any) -> str | None:
    """What an object that is iterable but neither a Dataset nor a DataLoader is, and what to
    pass instead; None when it is not iterable at all."""
    import types

    kind = type(obj).__name__
    if isinstance(obj, types.GeneratorType):
        return (
            "a generator, not a Dataset or DataLoader: it runs once, with settings fixed "
            "inside it; return the DataLoader (or Dataset) it iterates instead of yielding "
            "from it"
        )
    builtin = type(obj).__module__ == "builtins"  # a str or set is a mistake, not a loader
    if not builtin and (hasattr(obj, "__iter__") or hasattr(obj, "__next__")):
        return (
            f"a {kind}, an iterable of batches with workers and settings of its own, not a "
            "Dataset or DataLoader, so loadertune cannot rebuild it with others: pass the "
            "Dataset it reads (for a torchdata.nodes Loader, the dataset behind its mapper), "
            "or a DataLoader"
        )
    return None


def _holds_dataloader(obj: Any, depth: int) -> bool:
    from torch.utils.data import DataLoader

    if depth < 0:
        return False
    for value in _children(obj):
        if isinstance(value, DataLoader) or _holds_dataloader(value, depth - 1):
            return True
    return False


def _children(obj: Any) -> list[Any]:
    """The values of an object's attributes and the items of a list or tuple (not deeper)."""
    if isinstance(obj, list | tuple):
        return list(obj[:SEARCH_ITEMS])
    try:
        return list(vars(obj).values())
    except TypeError:  # no __dict__: slots or a builtin
        return []


def _ends_batched(dataset: Any) -> bool:
    pipeline = getattr(dataset, "pipeline", None)
    if not isinstance(pipeline, list) or not pipeline:
        return False
    stage = pipeline[-1]
    name = getattr(getattr(stage, "f", stage), "__name__", "")
    return name in BATCHING_STAGES
