"""In-memory tensor data and a small training step, for the diagnosis and report tests; also a
CLI target (``tests/in_memory.py:tensors``)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

_generator = torch.Generator().manual_seed(0)
tensors = TensorDataset(torch.randn(512, 16, generator=_generator), torch.arange(512) % 2)
loader = DataLoader(tensors, batch_size=32, shuffle=True)
pixels = TensorDataset(torch.randint(0, 256, (64, 3, 8, 8), generator=_generator).float())

_model = torch.nn.Linear(16, 2)
_optimizer = torch.optim.SGD(_model.parameters(), lr=0.01)


def train_step(batch: Any) -> float:
    features, labels = batch
    _optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(_model(features), labels)
    loss.backward()
    _optimizer.step()
    return float(loss.detach())


def broken_step(batch: Any) -> None:
    raise RuntimeError("step exploded")
