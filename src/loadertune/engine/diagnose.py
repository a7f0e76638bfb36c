"""Measurements beyond the trials, for the verdict and the advice: the headroom (the step alone
on cached batches; the loader alone without the step) and probes of the batch itself (its bytes;
whether fetching a whole batch at once is faster than sample by sample; on a GPU, its copy to
the device pinned and unpinned, see :mod:`transfer`).

Every probe is bounded in time, runs under the no-progress watchdog, restores torch's state and
records its own failure instead of raising: a diagnosis never costs the measurements made.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

from loadertune.engine.batches import batch_arrays, batch_len, tensor_bytes
from loadertune.engine.device import Devices, device_for
from loadertune.engine.harness import OFFLINE
from loadertune.engine.offline import TrialInterrupted, run_trial
from loadertune.engine.transfer import host_to_device
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.limits import TrialLimits

CACHED_BATCHES = 4  # the step replays these; a few, so a step that caches by identity still works
STEP_ALONE_S = 0.5  # seconds of replayed steps: hundreds of steps at a few ms each
LOADER_ALONE_S = 2.0  # trial budget of the loader-alone run (its epoch is estimated past that)
PROBE_S = 0.15  # seconds per side and round of the batched-fetch probe
PROBE_ROUNDS = 3  # interleaved rounds; the median of each side is compared
IN_MEMORY_SAMPLE_S = 1e-3  # a sample fetched faster than this is in memory: indexing overhead
# and collation can dominate it, which a batched fetch removes; slower samples (storage,
# decoding) are dominated by their own work, and probing them would take seconds
UINT8_CHECK_ELEMENTS = 4_000_000  # values checked for a lossless uint8 cast (16 MB of float32)

Clock = Callable[[], float]


def diagnose(
    workload: Workload,
    config: LoaderConfig,
    timeout_s: float = 60.0,
    loader_alone_s: float = LOADER_ALONE_S,
) -> dict[str, Any]:
    """The headroom and the batch probes for ``config`` (usually the pick), JSON-ready;
    ``loader_alone_s`` is the trial budget of the loader-alone run."""
    out: dict[str, Any] = {"config": config.label()}
    cached: list[Any] = []
    with _probe("step_alone", out, timeout_s):
        cached = _cached_batches(workload)
        out["batch"] = batch_facts(cached[0]) if cached else None
        out["step_alone"] = step_alone(workload, cached, devices=_devices(workload))
    device = _devices(workload)()  # the step may have initialised CUDA
    if device is not None and cached:
        with _probe("copy", out, timeout_s):
            out["copy"] = host_to_device(cached[0], device)
    with _probe("loader_alone", out, timeout_s):
        out["loader_alone"] = loader_alone(workload, config, loader_alone_s, timeout_s)
    with _probe("batched_fetch", out, timeout_s):
        out["batched_fetch"] = batched_fetch(workload)
    return out


@contextmanager
def _probe(name: str, out: dict[str, Any], timeout_s: float) -> Iterator[None]:
    """Run one probe under the offline policy (the watchdog, reaping, torch's state restored);
    record what it raised."""
    try:
        with OFFLINE.around(), OFFLINE.watchdog(timeout_s):
            yield
    except (KeyboardInterrupt, TrialInterrupted):
        raise
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything; we report it
        out.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"


def _devices(workload: Workload) -> Devices:
    return lambda: device_for(workload.device)


def _cached_batches(workload: Workload) -> list[Any]:
    """The first few batches of the user's own loader without workers."""
    loader = workload.loader(LoaderConfig())
    return list(islice(iter(loader), CACHED_BATCHES))


def step_alone(
    workload: Workload,
    cached: list[Any],
    budget_s: float = STEP_ALONE_S,
    clock: Clock = time.perf_counter,
    devices: Devices | None = None,
) -> dict[str, Any] | None:
    """The step alone, replayed on cached batches: the rate infinitely fast loading would give.
    None without a step (the loader alone is then the whole job). On the device ``devices``
    names once the first step has run, the clock starts and stops after a synchronize (the
    steps' queued work is theirs), never per step."""
    step = workload.step
    if step is None or not cached:
        return None
    step(cached[0])  # warm-up: first-call costs (allocation, autograd graph) are not steady
    samples = batches = 0
    device = devices() if devices is not None else None
    sync = device.synchronize if device is not None else _nothing
    sync()
    begin = clock()
    while batches < 1 or clock() - begin < budget_s:
        batch = cached[batches % len(cached)]
        step(batch)
        samples += batch_len(batch)
        batches += 1
    sync()
    seconds = clock() - begin
    return {"samples_per_s": samples / seconds, "batches": batches, "seconds": seconds}


def _nothing() -> None:
    pass


def loader_alone(
    workload: Workload, config: LoaderConfig, budget_s: float, timeout_s: float
) -> dict[str, Any]:
    """``config``'s loader without the step: how fast loading alone can go."""
    bare = dataclasses.replace(workload, step=None)
    trial = run_trial(bare, config, TrialLimits(budget_s=budget_s, timeout_s=timeout_s))
    return {
        "samples_per_s": trial.samples_per_s,
        "epoch_s": trial.epoch_s,
        "epoch_measured": trial.epoch_measured,
        "error": str(trial.error) if trial.error else None,
    }


def batch_facts(batch: Any) -> dict[str, Any]:
    """Bytes in a batch's tensors, how many are floating point, and whether those floats are
    whole numbers in 0..255 (so uint8 would carry them without loss, in a quarter of float32)."""
    import torch

    floats = [
        t for t in batch_arrays(batch) if isinstance(t, torch.Tensor) and t.is_floating_point()
    ]
    return {
        "bytes": tensor_bytes(batch),
        "float_bytes": tensor_bytes(floats),
        "float_dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in floats}),
        "uint8_lossless": bool(floats) and all(_fits_uint8(t) for t in floats),
    }


def _fits_uint8(tensor: Any) -> bool:
    flat = tensor.detach().reshape(-1)[:UINT8_CHECK_ELEMENTS]
    if flat.numel() == 0:
        return False
    whole = bool((flat == flat.round()).all())
    return whole and float(flat.min()) >= 0 and float(flat.max()) <= 255


def batched_fetch(workload: Workload, clock: Clock = time.perf_counter) -> dict[str, Any] | None:
    """Per-batch time of the loader as given (sample by sample, then collate) against
    ``dataset[indices]`` for the whole batch at once, both without workers; None where the
    dataset does not take a list of indices, gives another batch, or is not in memory."""
    plain, batched = _fetch_pair(workload)
    if plain is None or batched is None:
        return None
    sides: dict[str, list[float]] = {"per_sample": [], "batched": []}
    for _ in range(PROBE_ROUNDS):
        sides["per_sample"].append(_per_batch_s(plain, clock))
        sides["batched"].append(_per_batch_s(batched, clock))
    per_sample = sorted(sides["per_sample"])[PROBE_ROUNDS // 2]
    at_once = sorted(sides["batched"])[PROBE_ROUNDS // 2]
    return {
        "per_sample_s": per_sample,
        "batched_s": at_once,
        "speedup": per_sample / at_once if at_once > 0 else None,
    }


def _fetch_pair(workload: Workload) -> tuple[Any, Any]:
    """The plain loader and its batched twin, or Nones where the probe does not apply."""
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    batch_size = workload.fixed_kwargs().get("batch_size")
    dataset = workload.dataset
    if workload.is_iterable or not batch_size or workload.keep_your_own():
        return None, None
    if _sample_s(dataset) > IN_MEMORY_SAMPLE_S:
        return None, None
    plain = DataLoader(dataset, batch_size=batch_size)
    sampler = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
    batched = DataLoader(dataset, sampler=sampler, batch_size=None)
    try:
        same = _same(next(iter(plain)), next(iter(batched)))
    except Exception:  # noqa: BLE001 - a dataset that refuses a list of indices: no probe
        return None, None
    return (plain, batched) if same else (None, None)


def _sample_s(dataset: Any) -> float:
    begin = time.perf_counter()
    dataset[0]
    return time.perf_counter() - begin


def _same(a: Any, b: Any) -> bool:
    """Equal nested structure, tensor shapes, dtypes and values."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(torch.equal(a, b))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _per_batch_s(loader: Any, clock: Clock) -> float:
    """Seconds per batch over at most ``PROBE_S`` (at least one batch)."""
    count = 0
    begin = clock()
    for _ in loader:
        count += 1
        if clock() - begin >= PROBE_S:
            break
    return (clock() - begin) / max(count, 1)
