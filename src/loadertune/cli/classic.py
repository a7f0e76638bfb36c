"""The classic DataLoader example, embedded: what ``loadertune demo`` measures.

1000 in-memory rows of 100 floats with binary labels, ``nn.Linear(100, 2)``, cross-entropy,
SGD at lr 0.01, batch 64, shuffled: the example from which most people learn ``num_workers``.
"""

from __future__ import annotations

from typing import Any

from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig

# The example's own shape, not the library's defaults: it stays the same if those change.
ROWS, FEATURES, CLASSES, BATCH_SIZE = 1000, 100, 2, 64
SUMMARY = f"{ROWS} rows x {FEATURES} floats, nn.Linear({FEATURES}, {CLASSES}), batch {BATCH_SIZE}"
DEMO_WORKERS = (0, 1, 2, 4)
DEMO_REPEATS = 5
DEMO_EPOCHS = 10  # the classic recipe trains for several epochs; persistent workers start once


class ClassicStep:
    """One SGD step of a linear classifier; a class so it pickles and keeps its model."""

    def __init__(self, seed: int = 0) -> None:
        import torch

        torch.manual_seed(seed)
        self.model = torch.nn.Linear(FEATURES, CLASSES)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.loss = torch.nn.CrossEntropyLoss()

    def __call__(self, batch: Any) -> float:
        features, labels = batch
        self.optimizer.zero_grad()
        loss = self.loss(self.model(features), labels)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def classic_workload(seed: int = 0) -> Workload:
    """The classic example as a workload (data made here, nothing read from disk)."""
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(ROWS, FEATURES, generator=generator)
    labels = torch.randint(0, CLASSES, (ROWS,), generator=generator)
    dataset = TensorDataset(features, labels)
    return Workload(
        dataset,
        step=ClassicStep(seed),
        batch_size=BATCH_SIZE,
        epochs=DEMO_EPOCHS,
        name="classic example",
    )


def demo_configs(usable_cpus: int) -> list[LoaderConfig]:
    """0, 1, 2 and 4 workers, one per usable CPU, and persistent workers at that count."""
    counts = sorted({*DEMO_WORKERS, usable_cpus})
    configs = [LoaderConfig(num_workers=n) for n in counts]
    configs.append(LoaderConfig(num_workers=usable_cpus, persistent_workers=True))
    return configs
