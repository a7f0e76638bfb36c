"""CPU time of the main process plus its workers: how many cores a trial kept busy."""

from __future__ import annotations

import contextlib

import psutil


def tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of process ``pid`` (default: this one) and its live
    descendants. Reading ``/proc/<pid>/stat`` is cheap (microseconds), unlike PSS.

    Workers that already exited are not counted: read while they are alive.
    """
    root = psutil.Process(pid)
    total = _cpu(root)
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            total += _cpu(child)
    return total


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
