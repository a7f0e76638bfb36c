"""One batch's copy from the host to the GPU, unpinned and pinned: what pin_memory saves.

``pin_memory=True`` makes the loader copy each batch into page-locked memory (a thread in the
main process) so that its copy to the GPU can be faster and, with ``non_blocking=True``,
overlap the work queued before it. That helps some pipelines and slows others (allennlp
#4670; the PyTorch tutorial on pin_memory and non_blocking measures ``pin_memory()`` followed
by ``.to(non_blocking=True)`` up to 2x slower than a plain ``.to()``). So it is measured, on
the batch itself: a plain ``.to(device)``; pinning; the pinned batch's copy with
``non_blocking=True`` (and how soon that call returns: the time the CPU is free for).
Interleaved rounds, medians; every copy timed to a synchronize.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadertune.engine.batches import batch_arrays
from loadertune.engine.device import Device

COPY_ROUNDS = 5  # interleaved rounds of the three timings; medians are kept
Clock = Callable[[], float]


@dataclass(frozen=True)
class CopyOps:
    """How to pin a host tensor and copy one to the device (``non_blocking`` or not)."""

    pin: Callable[[Any], Any]
    copy: Callable[[Any, bool], Any]


def cuda_ops() -> CopyOps:
    """Torch's: ``tensor.pin_memory()`` and ``tensor.to(cuda, non_blocking=...)``."""
    import torch

    target = torch.device("cuda", torch.cuda.current_device())
    return CopyOps(pin=lambda t: t.pin_memory(), copy=lambda t, nb: t.to(target, non_blocking=nb))


def host_to_device(
    batch: Any,
    device: Device,
    *,
    ops: CopyOps | None = None,
    clock: Clock = time.perf_counter,
    rounds: int = COPY_ROUNDS,
) -> dict[str, Any] | None:
    """Seconds per batch: ``plain_s`` (``.to()`` from pageable memory), ``pin_s`` (pinning),
    ``pinned_s`` (``.to(non_blocking=True)`` from pinned memory, to its end) and
    ``pinned_enqueue_s`` (until that call returned); ``pin_net_s`` is pinning plus the pinned
    copy less the plain copy (above 0: pinning costs more than it saves). None for a batch
    without host tensors."""
    tensors = _host_tensors(batch)
    if not tensors:
        return None
    ops = ops or cuda_ops()
    _round(tensors, device, ops, clock)  # warm-up: first copies, the pinned allocator's cache
    taken: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, seconds in _round(tensors, device, ops, clock).items():
            taken.setdefault(name, []).append(seconds)
    median = {name: statistics.median(values) for name, values in taken.items()}
    return {
        "bytes": sum(int(t.nbytes) for t in tensors),
        **median,
        "pin_net_s": median["pin_s"] + median["pinned_s"] - median["plain_s"],
        "rounds": rounds,
    }


def _round(tensors: list[Any], device: Device, ops: CopyOps, clock: Clock) -> dict[str, float]:
    device.synchronize()
    begin = clock()
    plain = [ops.copy(t, False) for t in tensors]
    device.synchronize()
    plain_s = clock() - begin
    begin = clock()
    pinned = [ops.pin(t) for t in tensors]
    pin_s = clock() - begin
    device.synchronize()
    begin = clock()
    copies = [ops.copy(t, True) for t in pinned]
    enqueue_s = clock() - begin
    device.synchronize()
    pinned_s = clock() - begin
    del plain, copies
    return {"plain_s": plain_s, "pin_s": pin_s, "pinned_s": pinned_s, "pinned_enqueue_s": enqueue_s}


def _host_tensors(batch: Any) -> list[Any]:
    import torch

    return [
        t
        for t in batch_arrays(batch)
        if isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.numel() > 0
    ]
