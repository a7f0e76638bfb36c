"""Where the step runs: the one seam to the accelerator.

CUDA runs asynchronously: a step returns when its kernels are queued, not when they are done,
so a clock stopped without a synchronize misses the queued work (Lightning's SimpleProfiler
never synchronizes; nerfstudio #183 found its data/train split wrong for that reason). Where
CUDA is in use, a trial synchronizes where a clock is read for a figure: before its start
(outside the clock), before the pause at the epoch's end, at the epoch's end and at a cut;
never per step. Around each step it records a pair of CUDA events on the current stream,
read once at the trial's end: the GPU-side gap between one step's work and the next is the
GPU's true wait for input.

:class:`Device` is the protocol; :class:`CudaDevice` the real one; the tests pass a fake
asynchronous device on a fake clock. :func:`device_for` chooses: ``"cuda"`` always,
``"cpu"`` never, ``"auto"`` (the default) once torch has initialised CUDA in this process,
which the user's model or step does (checked before the trial and after its first step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from loadertune.records import defaults

MAX_MARKED_STEPS = 20_000  # event pairs per trial: a 10 s trial of 0.5 ms steps; steps past
# this are not marked (the idle figure covers those before), so a long epoch holds no more
# CUDA events than this
AUTO, CUDA, CPU = defaults.DEVICES


class Device(Protocol):
    """What a trial needs of an asynchronous device: wait for its queued work, and marks
    recorded in its queue whose device-side times are read once that work is done."""

    name: str

    def synchronize(self) -> None:
        """Return once every queued piece of work is done."""

    def prepare(self, marks: int) -> None:
        """Make ``marks`` marks ahead of time, outside the clock."""

    def mark(self) -> Any:
        """A mark recorded now in the device's queue (reached once the work before it is)."""

    def seconds_between(self, earlier: Any, later: Any) -> float:
        """Device seconds from ``earlier`` to ``later`` (both reached: after a synchronize)."""


Devices = Callable[[], "Device | None"]


class CudaDevice:
    """The current CUDA device and stream: ``torch.cuda.synchronize`` and timing events."""

    def __init__(self) -> None:
        import torch

        index = torch.cuda.current_device()
        self.name = f"cuda:{index} {torch.cuda.get_device_name(index)}"
        self._pool: list[Any] = []

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def prepare(self, marks: int) -> None:
        import torch

        missing = max(0, marks - len(self._pool))
        new = [torch.cuda.Event(enable_timing=True) for _ in range(missing)]  # type: ignore[no-untyped-call]
        self._pool += new

    def mark(self) -> Any:
        if not self._pool:
            self.prepare(1)
        event = self._pool.pop()
        event.record()  # on the current stream, as the step's kernels are
        return event

    def seconds_between(self, earlier: Any, later: Any) -> float:
        return float(earlier.elapsed_time(later)) / 1000.0  # CUDA says milliseconds


def cuda_in_use() -> bool:
    """Whether torch has initialised CUDA in this process (a model or tensor put on a GPU).
    Initialises nothing itself: a CPU job, or one whose workers fork, stays as it was."""
    import torch

    return bool(torch.cuda.is_initialized())  # type: ignore[no-untyped-call]


def device_for(choice: str) -> Device | None:
    """The device to synchronize and mark for ``choice`` (one of ``defaults.DEVICES``)."""
    if choice == CPU:
        return None
    if choice == CUDA or (choice == AUTO and cuda_in_use()):
        return CudaDevice()
    if choice != AUTO:
        raise ValueError(f"device must be one of {', '.join(defaults.DEVICES)}, got {choice!r}")
    return None


def check_choice(choice: str) -> None:
    """Refuse a device nobody can use: an unknown name, or ``cuda`` without a CUDA device."""
    if choice not in defaults.DEVICES:
        raise ValueError(f"device must be one of {', '.join(defaults.DEVICES)}, got {choice!r}")
    if choice == CUDA:
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device")


class StepMarks:
    """A mark before and after each step (up to ``limit`` steps), read at the end into the
    device-side start and end of every marked step, in seconds since the first start."""

    def __init__(self, device: Device, limit: int = MAX_MARKED_STEPS) -> None:
        self.device, self.limit = device, limit
        self._pairs: list[tuple[Any, Any]] = []
        self._open: Any = None

    def before(self) -> None:
        if len(self._pairs) < self.limit:
            self._open = self.device.mark()

    def after(self) -> None:
        if self._open is not None:
            self._pairs.append((self._open, self.device.mark()))
            self._open = None

    def read(self) -> tuple[list[float], list[float]]:
        """Starts and ends of the marked steps; call after a synchronize."""
        if not self._pairs:
            return [], []
        first, between = self._pairs[0][0], self.device.seconds_between
        starts = [between(first, start) for start, _ in self._pairs]
        ends = [between(first, end) for _, end in self._pairs]
        return starts, ends


class NoMarks:
    """Stands in for :class:`StepMarks` where no device is in use: the hot path stays flat."""

    def before(self) -> None:
        pass

    def after(self) -> None:
        pass

    def read(self) -> tuple[list[float], list[float]]:
        return [], []
