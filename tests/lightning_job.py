"""Small Lightning fits for the callback's tests: a module that records which sample indices
each training (and validation) step saw, per epoch, and a trainer with nothing but the fit.

Run as a script (``python lightning_job.py OUT_DIR``) it is the DDP job: 2 CPU processes on
gloo (Lightning launches the second itself), each rank writing what it trained on and the
config its loader ran to ``OUT_DIR/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from loadertune.lightning import DataLoaderTuner
from sample_data import Indexed

SAMPLES = 192


class Recording(pl.LightningModule):
    """Trains a linear layer; ``seen[epoch]`` and ``val_seen[epoch]`` are the indices its steps
    got. ``make_loader(stage)`` builds the loaders its hooks return."""

    def __init__(self, make_loader: Any) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.make_loader = make_loader
        self.seen: dict[int, list[int]] = {}
        self.val_seen: dict[int, list[int]] = {}
        self.requests = 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        indices, rows = batch
        self.seen.setdefault(self.current_epoch, []).extend(indices.tolist())
        return self.layer(rows).sum()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if not self.trainer.sanity_checking:
            self.val_seen.setdefault(self.current_epoch, []).extend(batch[0].tolist())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> Any:
        self.requests += 1
        return self.make_loader("train")


def trainer(callbacks: list[Any], **options: Any) -> pl.Trainer:
    settings: dict[str, Any] = {
        "max_epochs": 3,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(callbacks=callbacks, **{**settings, **options})


def plain(stage: str, shuffle: bool = True) -> DataLoader[Any]:
    return DataLoader(
        Indexed(SAMPLES, cost_s=0.002), batch_size=8, shuffle=shuffle and stage == "train"
    )


def _ddp_job(out: Path) -> None:
    tuner = DataLoaderTuner(cache=False)
    module = Recording(plain)
    fit = trainer([tuner], devices=2, strategy="ddp")
    fit.fit(module)
    loader = tuner.train_loaders[0]
    running = (
        loader.tuning.best.config.to_kwargs() if loader.tuning and loader.tuning.best else None
    )
    report = {
        "rank": fit.global_rank,
        "seen": module.seen,
        "sampler": type(loader.sampler).__name__,
        "batches": len(loader),
        "running": running,
        "stages": [[t.config.label() for t in epoch] for epoch in loader.stages],
    }
    (out / f"rank{fit.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _ddp_job(Path(sys.argv[1]))
