"""The GPU check's workloads (the classic example and a small conv net, in memory), the steps
that train on them without ever synchronizing, and the device they run on (on the CPU, for the
smoke run, the CUDA calls become nothing)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpu_trace import CPU_ACTIVITIES, GPU_ACTIVITIES, STEP


@dataclass
class Dev:
    """The device the steps run on; on the CPU the CUDA calls become nothing."""

    kind: str  # "cuda" or "cpu"

    @property
    def torch(self) -> Any:
        import torch

        return torch.device(self.kind)

    def sync(self) -> None:
        if self.kind == "cuda":
            import torch

            torch.cuda.synchronize()

    @property
    def name(self) -> str:
        import torch

        return torch.cuda.get_device_name(0) if self.kind == "cuda" else "CPU (smoke run)"

    @property
    def activities(self) -> list[Any]:
        from torch.profiler import ProfilerActivity

        extra = [ProfilerActivity.CUDA] if self.kind == "cuda" else []
        return [ProfilerActivity.CPU, *extra]

    @property
    def busy(self) -> tuple[str, ...]:
        return GPU_ACTIVITIES if self.kind == "cuda" else CPU_ACTIVITIES


class Rows:
    """In-memory (features, label) rows: indexing two tensors, as TensorDataset does."""

    def __init__(self, features: Any, labels: Any) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.features[index], self.labels[index]


def image_side() -> int:
    """64x64 images where /dev/shm holds 8 workers' batches in flight with room to spare
    (~50 MB), else 32x32: a full /dev/shm kills a worker with a bus error."""
    try:
        shm = shutil.disk_usage("/dev/shm").total
    except OSError:
        shm = 0
    return 64 if shm >= 512 * 2**20 else 32


def workloads(dev: Dev, plan: Any) -> dict[str, tuple[Rows, Callable[[Any], None], str]]:
    """name -> (dataset, step, what it is); ``plan`` gives ``conv_images`` and ``conv_side``."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    classic = Rows(torch.randn(1000, 100, generator=generator), torch.randint(0, 2, (1000,)))
    side = plan.conv_side or image_side()
    images = torch.rand(plan.conv_images, 3, side, side, generator=generator)
    conv = Rows(images, torch.randint(0, 10, (plan.conv_images,)))
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    return {
        "classic": (
            classic,
            make_step(nn.Linear(100, 2), dev),
            "1000 x 100 floats, Linear(100, 2)",
        ),
        "convnet": (
            conv,
            make_step(net, dev),
            f"{plan.conv_images} images 3x{side}x{side}, 3 convs",
        ),
    }


def make_step(model: Any, dev: Dev) -> Callable[[Any], None]:
    """A training step that queues its work and returns: no synchronize, no ``.item()``."""
    import torch
    from torch.profiler import record_function

    model.to(dev.torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(batch: Any) -> None:
        with record_function(STEP):
            x, y = batch
            x, y = x.to(dev.torch, non_blocking=True), y.to(dev.torch, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

    return step
