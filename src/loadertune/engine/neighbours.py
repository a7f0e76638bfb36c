"""What other processes took from the CPUs this one may use while it measured: their busy
CPU-seconds on our CPUs (the hypervisor's steal included) over the wall time.

A loader that computes runs slower on a shared machine however steady its repeats are: the
repeats show the noise within a run, not a neighbour that took half the CPUs for all of it.
``loadertune check`` says so when it happened, beside a comparison it may have spoiled.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

OTHERS_WARN_CPUS = 0.25  # others kept a quarter of a CPU busy on average: enough to slow a
# CPU-bound loader by more than check's 10% tolerance on a 2-CPU machine


@dataclass(frozen=True)
class CpuSample:
    """Counters at one moment: wall seconds, busy CPU-seconds of the CPUs in our affinity
    (steal included), and this process's CPU-seconds with its exited children's (workers)."""

    wall_s: float
    busy_s: float
    own_s: float


def sample() -> CpuSample | None:
    """The counters now; None where they do not describe our CPUs: under a cgroup quota below
    the affinity, other tenants' time on the host's CPUs is not taken from us."""
    from loadertune.engine.machine import usable_cpus

    count = usable_cpus()
    if count.quota_cpus is not None and count.quota_cpus < count.affinity:
        return None
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    per_cpu = psutil.cpu_times(percpu=True)
    ours = [t for i, t in enumerate(per_cpu) if mine is None or i in mine]
    busy = sum(t.user + t.nice + t.system + _extra(t) for t in ours)
    own = os.times()
    return CpuSample(
        time.monotonic(),
        busy,
        own.user + own.system + own.children_user + own.children_system,
    )


def _extra(times: object) -> float:
    """irq, softirq and steal, where the platform counts them."""
    return sum(float(getattr(times, name, 0.0)) for name in ("irq", "softirq", "steal"))


def others_cpus(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """CPUs other processes kept busy on average between the two samples (>= 0)."""
    if before is None or after is None or after.wall_s <= before.wall_s:
        return None
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return max(others, 0.0) / (after.wall_s - before.wall_s)


def contention_warning(others: float | None, usable: int | None) -> str | None:
    """The warning, with its fix, when others took at least ``OTHERS_WARN_CPUS``."""
    if others is None or others < OTHERS_WARN_CPUS:
        return None
    of = f" of {usable} usable" if usable else ""
    return (
        f"other processes kept {others:.1f}{of} CPUs busy while this ran: a loader that "
        "computes runs slower on a shared machine; run the check where nothing else runs"
    )
