"""Trial: what happened when one LoaderConfig ran the user's step, kept raw.

Every derived figure (startup, steady rate, epoch time, data wait, peak memory) is computed
from the raw samples on demand, never stored on its own, so a result read back from JSON
gives the same figures as the run that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from loadertune.records import stats
from loadertune.records.config import LoaderConfig

OK = "ok"
FAILED = "failed"
MAIN_PROCESS = -1  # worker_id recorded when collation ran in the main process


@dataclass
class TrialError:
    """Why a trial failed. ``kind`` is exception, step, timeout, unpicklable, worker_died, shm
    (a worker died of a full /dev/shm), memory (stopped at or before the memory limit),
    cuda_fork (a forked worker used CUDA the main process had initialised) or interrupted."""

    kind: str
    message: str
    index: int | None = None
    batch: int | None = None

    def __str__(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"index {self.index}")
        if self.batch is not None:
            where.append(f"batch {self.batch}")
        return self.message + (f" ({', '.join(where)})" if where else "")


@dataclass
class Trial:
    """One config, one repeat: raw per-batch times, memory samples, status and error.

    Times are seconds since ``iter(loader)`` was called. ``epoch_batches`` is the batches in a
    full epoch (or the batch budget for a dataset without length); ``complete`` says whether the
    whole epoch ran, in which case ``end_s`` is when the loop ended (after StopIteration).
    ``memory_watch`` holds the cheap readings taken during the trial, ``(t, batches consumed,
    bytes)``: PSS before ``iter()`` plus the growth since (see :mod:`memwatch`).
    ``batch_bytes`` is the tensor bytes of the first batch; ``warnings`` say what to change,
    each with its figures. Where the step ran on a GPU, ``device`` names it and ``gpu_start_s``
    / ``gpu_end_s`` are when the GPU reached each marked step's start and end, in device
    seconds since the first one (see :mod:`loadertune.engine.device`).
    """

    config: LoaderConfig
    repeat: int = 0
    epoch_batches: int | None = None
    status: str = OK
    error: TrialError | None = None
    complete: bool = False
    end_s: float | None = None
    shutdown_s: float = 0.0
    warm_startup_s: float | None = None
    request_s: list[float] = field(default_factory=list)
    ready_s: list[float] = field(default_factory=list)
    step_end_s: list[float] = field(default_factory=list)
    done_s: list[float] = field(default_factory=list)
    worker_id: list[int] = field(default_factory=list)
    n_samples: list[int] = field(default_factory=list)
    handed_s: list[float] = field(default_factory=list)
    memory: list[tuple[float, int]] = field(default_factory=list)
    memory_metric: str = "pss"
    cpu: list[tuple[float, float]] = field(default_factory=list)
    memory_watch: list[tuple[float, int, int]] = field(default_factory=list)
    batch_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)
    ranks: list[dict[str, Any]] = field(default_factory=list)  # under torchrun: every rank's
    # figures of this trial (the raw samples above are its slowest rank's)
    device: str | None = None  # the GPU the step ran on, e.g. "cuda:0 NVIDIA H200"
    gpu_start_s: list[float] = field(default_factory=list)
    gpu_end_s: list[float] = field(default_factory=list)

    def trim(self) -> None:
        """Cut the per-batch lists to their common length (an interrupt can land mid-record)."""
        lists = (self.request_s, self.ready_s, self.step_end_s, self.done_s, self.worker_id)
        n = min(len(values) for values in (*lists, self.n_samples))
        for values in (*lists, self.n_samples):
            del values[n:]

    def round_raw(self) -> None:
        """Round the per-batch times to the microsecond, as the JSON keeps them, so a result
        read back gives the same figures."""
        lists = (self.request_s, self.ready_s, self.step_end_s, self.done_s)
        for values in (*lists, self.gpu_start_s, self.gpu_end_s):
            values[:] = [round(v, 6) for v in values]

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def batches(self) -> int:
        return len(self.ready_s)

    @cached_property
    def times(self) -> stats.BatchTimes:
        return stats.BatchTimes(
            self.request_s, self.ready_s, self.step_end_s, self.done_s, self.n_samples
        )

    @cached_property
    def rate(self) -> stats.SteadyRate | None:
        """Steady batches/s, corrected for the prefetch stock (see :mod:`stats`)."""
        return stats.steady_rate(self.times, self.config.in_flight_batches)

    @property
    def startup_s(self) -> float | None:
        """Time to the first batch, from ``iter(loader)``: worker start plus the first batch."""
        return self.ready_s[0] if self.ready_s else None

    @property
    def epoch_s(self) -> float | None:
        """One full epoch with startup: measured whole if it ran, else estimated."""
        if not self.ok:
            return None
        if self.complete and self.end_s is not None:
            return self.end_s
        if self.epoch_batches is None or not self.step_end_s:
            return None
        return stats.estimate_epoch_s(
            self.step_end_s[-1], self.batches, self.epoch_batches, self.rate, self._tail_s()
        )

    @property
    def epoch_measured(self) -> bool:
        """True when :attr:`epoch_s` was timed whole, not extrapolated."""
        return self.ok and self.complete

    @property
    def samples_per_s(self) -> float | None:
        rate = self.rate
        if rate is None:
            return None
        mean = stats.mean_batch_samples(self.times, rate.first_batch)
        return rate.batches_per_s * mean if mean else None

    @property
    def data_wait_fraction(self) -> float | None:
        first = self.rate.first_batch if self.rate else 0
        return stats.data_wait_fraction(self.times, first)

    @property
    def cpu_busy(self) -> float | None:
        """Average cores kept busy by the main process and its workers while the trial ran
        (CPU seconds over wall seconds, between the first and last CPU reading)."""
        if len(self.cpu) < 2:
            return None
        (t0, c0), (t1, c1) = self.cpu[0], self.cpu[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    @property
    def gpu_idle_s(self) -> float | None:
        """GPU seconds between one marked step's work and the next's, summed (GPU only)."""
        if len(self.gpu_start_s) < 2:
            return None
        return stats.gpu_idle_s(self.gpu_start_s, self.gpu_end_s)

    @property
    def gpu_busy_s(self) -> float | None:
        """GPU seconds from each marked step's start to its end, summed (GPU only)."""
        if not self.gpu_start_s:
            return None
        return sum(e - s for s, e in zip(self.gpu_start_s, self.gpu_end_s, strict=False))

    @property
    def gpu_idle_fraction(self) -> float | None:
        """Share of the marked steps' span the GPU sat idle between steps: its true wait
        for input (the CPU's wait says little where the step runs asynchronously)."""
        return stats.gpu_idle_fraction(self.gpu_start_s, self.gpu_end_s)

    @property
    def peak_memory_bytes(self) -> int | None:
        return max((b for _, b in self.memory), default=None)

    def planned_s(self, epochs: int) -> float | None:
        """Wall time for ``epochs`` epochs: persistent workers pay full startup once."""
        epoch = self.epoch_s
        if epoch is None:
            return None
        if not self.config.persistent_workers or self.warm_startup_s is None or epochs == 1:
            return epoch * epochs
        warm_epoch = epoch - (self.startup_s or 0.0) + self.warm_startup_s
        return epoch + warm_epoch * (epochs - 1)

    def _tail_s(self) -> float:
        """What ending an epoch costs beyond the last batch: joining non-persistent workers."""
        return 0.0 if self.config.persistent_workers else self.shutdown_s

    def figures(self) -> dict[str, Any]:
        """The derived figures, JSON-ready."""
        rate = self.rate
        return {
            "epoch_s": self.epoch_s,
            "epoch_measured": self.epoch_measured,
            "startup_s": self.startup_s,
            "warm_startup_s": self.warm_startup_s,
            "samples_per_s": self.samples_per_s,
            "batches_per_s": rate.batches_per_s if rate else None,
            "rate_method": rate.method if rate else None,
            "data_wait_fraction": self.data_wait_fraction,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_metric": self.memory_metric,
            "cpu_busy": self.cpu_busy,
            "batches_measured": self.batches,
            **self._gpu_figures(),
        }

    def _gpu_figures(self) -> dict[str, Any]:
        """Only where the step ran on a GPU, so a CPU trial's document is as it was."""
        if self.device is None:
            return {}
        return {
            "device": self.device,
            "gpu_idle_fraction": self.gpu_idle_fraction,
            "gpu_idle_s": self.gpu_idle_s,
            "gpu_busy_s": self.gpu_busy_s,
            "gpu_steps_marked": len(self.gpu_start_s),
        }

    def raw(self) -> dict[str, Any]:
        """The raw samples, JSON-ready (rounded to the microsecond)."""
        return {
            "end_s": self.end_s,
            "shutdown_s": self.shutdown_s,
            "request_s": _us(self.request_s),
            "ready_s": _us(self.ready_s),
            "step_end_s": _us(self.step_end_s),
            "done_s": _us(self.done_s),
            "worker_id": self.worker_id,
            "n_samples": self.n_samples,
            "handed_s": _us(self.handed_s),
            "memory": [[round(t, 6), b] for t, b in self.memory],
            "cpu": [[round(t, 6), round(c, 4)] for t, c in self.cpu],
            "memory_watch": [[round(t, 6), n, b] for t, n, b in self.memory_watch],
            "batch_bytes": self.batch_bytes,
            **({"gpu_start_s": _us(self.gpu_start_s)} if self.device else {}),
            **({"gpu_end_s": _us(self.gpu_end_s)} if self.device else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_kwargs(),
            "label": self.config.label(),
            "repeat": self.repeat,
            "status": self.status,
            "error": str(self.error) if self.error else None,
            "error_kind": self.error.kind if self.error else None,
            "epoch_batches": self.epoch_batches,
            "complete": self.complete,
            "warnings": list(self.warnings),
            **({"ranks": list(self.ranks)} if self.ranks else {}),  # under torchrun only
            **self.figures(),
            "raw": self.raw(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Trial:
        raw = doc["raw"]
        error = None
        if doc.get("error"):
            error = TrialError(doc.get("error_kind") or "exception", doc["error"])
        return cls(
            config=LoaderConfig.from_kwargs(doc["config"]),
            repeat=doc.get("repeat", 0),
            epoch_batches=doc.get("epoch_batches"),
            status=doc["status"],
            error=error,
            complete=doc.get("complete", False),
            end_s=raw.get("end_s"),
            shutdown_s=raw.get("shutdown_s", 0.0),
            warm_startup_s=doc.get("warm_startup_s"),
            request_s=raw["request_s"],
            ready_s=raw["ready_s"],
            step_end_s=raw["step_end_s"],
            done_s=raw["done_s"],
            worker_id=raw["worker_id"],
            n_samples=raw["n_samples"],
            handed_s=raw.get("handed_s", []),
            memory=[(t, b) for t, b in raw.get("memory", [])],
            memory_metric=doc.get("memory_metric", "pss"),
            cpu=[(t, c) for t, c in raw.get("cpu", [])],
            memory_watch=[(t, n, b) for t, n, b in raw.get("memory_watch", [])],
            batch_bytes=raw.get("batch_bytes"),
            warnings=list(doc.get("warnings", [])),
            ranks=list(doc.get("ranks") or []),
            device=doc.get("device"),
            gpu_start_s=list(raw.get("gpu_start_s") or []),
            gpu_end_s=list(raw.get("gpu_end_s") or []),
        )


def _us(values: list[float]) -> list[float]:
    return [round(v, 6) for v in values]  # the runner records microseconds already
