"""Memory of the main process plus its worker processes, sampled over time.

RSS counts a page shared by the parent and its forked workers once per process, so it overstates
a worker pool; PSS splits each shared page among its sharers and USS counts only private pages.
We use PSS where the platform gives it, else USS, else RSS, and name the metric beside the figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psutil

# Sampling must stay cheap next to the work it watches: the sampler waits at least this many
# times a read's own CPU cost between reads, so it uses at most ~1% of one core.
CPU_BUDGET_FRACTION = 0.01
# Shortest wait between samples, used when reads are cheap. Measured on this 2-core VM (Linux
# 6.18, psutil 7.2): one tree_memory_bytes() with 8 forked children costs ~9 ms of CPU for small
# children and ~90 ms when each child has torch loaded and 200 MB touched (~10 ms per process
# for the kernel to walk /proc/<pid>/smaps_rollup, plus ~4 ms to find the children), so a fixed
# 0.2 s would cost 5-45% of a core; CPU_BUDGET_FRACTION stretches the wait to ~0.9 s and ~9 s.
DEFAULT_INTERVAL_S = 0.2
_METRICS = ("pss", "uss")  # preferred order; "rss" is the fallback every platform has
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)

Reader = Callable[[], tuple[int, str]]


def tree_memory_bytes(pid: int | None = None) -> tuple[int, str]:
    """Memory of process ``pid`` (default: this one) plus all its descendants, in bytes.

    Returns ``(bytes, metric)`` with metric ``"pss"`` (Linux), ``"uss"`` or ``"rss"``; one metric
    for the whole tree. Descendants that exit or deny access mid-read are left out; ``pid``
    itself not existing raises ``psutil.NoSuchProcess``.

    >>> total, metric = tree_memory_bytes()
    >>> total > 0 and metric in ("pss", "uss", "rss")
    True
    """
    root = psutil.Process(pid)
    total, metric = _root_memory(root)
    for child in root.children(recursive=True):
        try:
            total += _process_bytes(child, metric)
        except _GONE:
            continue
    return total, metric


def _root_memory(root: Any) -> tuple[int, str]:
    """The root's memory and the best metric it exposes, which the children are read with."""
    try:
        info = root.memory_full_info()
    except psutil.AccessDenied:
        return int(root.memory_info().rss), "rss"
    metric = next((name for name in _METRICS if hasattr(info, name)), "rss")
    return int(getattr(info, metric)), metric


def _process_bytes(process: Any, metric: str) -> int:
    info = process.memory_info() if metric == "rss" else process.memory_full_info()
    return int(getattr(info, metric))


class MemorySampler:
    """Samples ``tree_memory_bytes()`` on a daemon thread, from ``start()`` until ``stop()``.

    One sample is taken in the caller's thread at start and one at stop, so even a short trial
    has two. Between them the thread waits ``interval_s`` seconds, or longer when a read is
    expensive, so sampling costs at most about ``cpu_budget`` of one core. Samples are
    ``(t, bytes)`` with ``t`` from ``clock`` (seconds); a read's cost comes from ``cpu_clock``
    (CPU seconds of the reading thread). Reads that fail with a psutil error are skipped.
    With ``background=False`` there is no thread: only start, stop and :meth:`sample` read.

    >>> with MemorySampler() as sampler:
    ...     pass
    >>> len(sampler.samples) >= 2
    True
    """

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
        read: Reader = tree_memory_bytes,
        cpu_budget: float = CPU_BUDGET_FRACTION,
        background: bool = True,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s!r}")
        if not 0 < cpu_budget <= 1:
            raise ValueError(f"cpu_budget must be in (0, 1], got {cpu_budget!r}")
        self.interval_s = interval_s
        self.cpu_budget = cpu_budget
        self.background = background
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._read = read
        self._samples: list[tuple[float, int]] = []
        self._metric = ""
        self._last_cost_s = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def samples(self) -> list[tuple[float, int]]:
        """A copy of the ``(t, bytes)`` samples so far, oldest first."""
        with self._lock:
            return list(self._samples)

    @property
    def metric(self) -> str:
        """``"pss"``, ``"uss"`` or ``"rss"``: what the bytes count; ``""`` before any sample."""
        return self._metric

    @property
    def peak_bytes(self) -> int | None:
        """Largest sample in bytes, or ``None`` before any sample."""
        with self._lock:
            return max((size for _, size in self._samples), default=None)

    def start(self) -> MemorySampler:
        """Take the first sample and start the sampling thread; call once."""
        if self._thread is not None:
            raise RuntimeError("MemorySampler.start() called twice")
        self._sample()
        self._thread = threading.Thread(target=self._run, name="loadertune-memory", daemon=True)
        if self.background:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the thread, then take the last sample; later calls do nothing."""
        if self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()

    def sample(self) -> None:
        """Take one sample now, in the caller's thread (e.g. while workers are known alive)."""
        self._sample()

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self._wait_s()):
            self._sample()

    def _wait_s(self) -> float:
        """``interval_s``, stretched so a read's CPU cost stays within ``cpu_budget``."""
        return max(self.interval_s, self._last_cost_s * (1 - self.cpu_budget) / self.cpu_budget)

    def _sample(self) -> None:
        cpu_before = self._cpu_clock()
        try:
            size, metric = self._read()
        except psutil.Error:
            return
        finally:
            self._last_cost_s = self._cpu_clock() - cpu_before
        t = self._clock()
        with self._lock:
            self._samples.append((t, size))
            self._metric = metric
