"""Synthetic map-style datasets for the benchmarks, one per kind of per-sample cost.

Every class lives at module level and holds only tensors, bytes and numbers, so it pickles and
spawn or forkserver workers can import it. Nothing is downloaded or read from disk.

| kind | per-sample cost | what it stands for |
| --- | --- | --- |
| ``tiny`` | indexing two tensors | the classic in-memory example (TensorDataset) |
| ``pycpu`` | ~1 ms of pure-Python arithmetic (holds the GIL) | tokenising, parsing, feature code |
| ``storage`` | ``time.sleep(0.004)`` | network or disk latency, no CPU |
| ``jpeg`` | Pillow JPEG decode of ~500x375 and a 224x224 crop | image classification input |

>>> ds = make("tiny", 10)
>>> len(ds), ds[0][0].shape
(10, torch.Size([100]))
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

TINY_FEATURES = 100
STORAGE_LATENCY_S = 0.004  # one small random read from networked storage
JPEG_IMAGES = 64  # distinct encoded images, cycled: enough that caches don't flatter decode
JPEG_SIZE = (500, 375)  # (width, height): the typical ImageNet photo
CROP = 224
PYCPU_TARGET_MS = 1.0
_CALIBRATION_ITERATIONS = 20_000
_CALIBRATION_REPEATS = 5


class TinyRows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``samples`` rows of 100 float32 features and an int64 label, all in memory."""

    def __init__(self, samples: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(samples, TINY_FEATURES, generator=generator)
        self.labels = torch.randint(0, 2, (samples,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]


def _lcg(seed: int, iterations: int) -> int:
    """Pure-Python integer work that holds the GIL for the whole loop."""
    acc = seed
    for i in range(iterations):
        acc = (acc * 1103515245 + 12345 + i) & 0xFFFFFFFF
    return acc


def calibrate_iterations(target_ms: float = PYCPU_TARGET_MS) -> int:
    """Loop iterations that take ``target_ms`` on this machine (best of a few runs: unloaded)."""
    best_s = float("inf")
    for repeat in range(_CALIBRATION_REPEATS):
        start = time.perf_counter()
        _lcg(repeat, _CALIBRATION_ITERATIONS)
        best_s = min(best_s, time.perf_counter() - start)
    return max(1, round(_CALIBRATION_ITERATIONS * target_ms / 1000 / best_s))


class PyCpu(Dataset[torch.Tensor]):
    """``samples`` items, each ``iterations`` of pure-Python arithmetic (default: ~1 ms here)."""

    def __init__(self, samples: int, iterations: int | None = None) -> None:
        self.samples = samples
        self.iterations = iterations if iterations is not None else calibrate_iterations()

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        acc = _lcg(index, self.iterations)
        return torch.tensor([acc & 0xFFFF, index], dtype=torch.int64)


class Storage(Dataset[torch.Tensor]):
    """``samples`` items, each waiting ``latency_s`` (no CPU) as a storage read would."""

    def __init__(self, samples: int, latency_s: float = STORAGE_LATENCY_S) -> None:
        self.samples = samples
        self.latency_s = latency_s

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        time.sleep(self.latency_s)
        return torch.full((16,), index, dtype=torch.int64)


def _encode_jpeg(rng: np.random.Generator) -> bytes:
    """A seeded photo-like image (smooth gradients plus noise) encoded as JPEG at quality 90."""
    from PIL import Image

    width, height = JPEG_SIZE
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    freq = rng.uniform(0.005, 0.03, size=3)
    channels = [
        127 + 80 * np.sin(freq[c] * xs + phase[c]) * np.cos(freq[c] * ys - phase[c])
        for c in range(3)
    ]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 20, size=(height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class Jpeg(Dataset[torch.Tensor]):
    """``samples`` items: decode one of ``images`` in-memory JPEGs, random-crop 224x224.

    Returns a ``uint8`` tensor shaped (3, 224, 224).
    """

    def __init__(self, samples: int, images: int = JPEG_IMAGES, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.samples = samples
        self.encoded = [_encode_jpeg(rng) for _ in range(images)]

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(io.BytesIO(self.encoded[index % len(self.encoded)])) as image:
            rgb = image.convert("RGB")
        left = random.randint(0, rgb.width - CROP)
        top = random.randint(0, rgb.height - CROP)
        crop = np.asarray(rgb.crop((left, top, left + CROP, top + CROP)))
        return torch.from_numpy(crop.copy()).permute(2, 0, 1)


KINDS: dict[str, Callable[[int], Dataset[Any]]] = {
    "tiny": TinyRows,
    "pycpu": PyCpu,
    "storage": Storage,
    "jpeg": Jpeg,
}


def make(kind: str, samples: int, **options: Any) -> Dataset[Any]:
    """The dataset of ``kind`` (a key of :data:`KINDS`) with ``samples`` items."""
    try:
        cls = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown workload kind {kind!r}; choose from {sorted(KINDS)}") from None
    return cls(samples, **options)


def default_step(kind: str) -> Callable[[Any], Any] | None:
    """The step to bench ``kind`` with: None, the loader alone, like a hand-timed ``pass`` loop."""
    if kind not in KINDS:
        raise ValueError(f"unknown workload kind {kind!r}; choose from {sorted(KINDS)}")
    return None


class HeavyStep:
    """A training step heavier than loading: a few matrix products per batch."""

    def __init__(self, size: int = 384, repeats: int = 6) -> None:
        torch.manual_seed(0)
        self.weight = torch.randn(size, size)
        self.repeats = repeats

    def __call__(self, batch: Any) -> float:
        x = self.weight
        for _ in range(self.repeats):
            x = torch.tanh(x @ self.weight)
        return float(x[0, 0])


class ClassicStep:
    """``nn.Linear(100, 2)``, cross-entropy, SGD: the classic example's step."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(TINY_FEATURES, 2)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)

    def __call__(self, batch: Any) -> float:
        features, labels = batch
        self.optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.model(features), labels)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
