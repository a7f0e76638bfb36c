"""What a batch holds, found recursively through dicts, lists, tuples and named tuples: its
samples, its tensors and their bytes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def batch_len(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor, found recursively."""
    size = _leading_size(batch)
    return size if size is not None else 1


def _leading_size(obj: Any) -> int | None:
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        for item in obj:
            size = _leading_size(item)
            if size is not None:
                return size
        return len(obj)
    return None


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors (and arrays) in a batch; anything else counts 0."""
    return sum(array.nbytes for array in batch_arrays(obj))


def batch_arrays(obj: Any) -> Iterator[Any]:
    """The tensors and arrays (objects with ``shape`` and an integer ``nbytes``) in a batch."""
    if isinstance(getattr(obj, "nbytes", None), int) and hasattr(obj, "shape"):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from batch_arrays(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from batch_arrays(item)
