"""Iterable datasets that deliver the wrong amount of data, and a step that hangs; importable
by worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset


class Unsplit(IterableDataset[torch.Tensor]):
    """Says 32 samples, and every worker yields all 32: a common mistake with workers."""

    def __len__(self) -> int:
        return 32

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (torch.full((2,), float(i)) for i in range(32))


class Short(IterableDataset[torch.Tensor]):
    """A stream without length that ends after 12 samples."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (torch.full((2,), float(i)) for i in range(12))


def hanging_step(batch: Any) -> None:
    time.sleep(1000)
