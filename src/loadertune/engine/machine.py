"""Machine facts: usable CPUs (affinity and cgroup quota), memory, /dev/shm, versions.

``os.cpu_count()`` ignores affinity and container quotas, and ``os.sched_getaffinity`` ignores
cgroup quotas: in a pod limited to 4 CPUs on a 12-core node both say 12. ``usable_cpus`` reads
the quota too (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``).

torch is imported only inside ``machine_facts``, so this module stays cheap to import.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import psutil

# Where a v1 hierarchy holding the cpu controller is usually mounted under the cgroup root.
_V1_CPU_MOUNTS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
# Quotas are ratios of integers; rounding first keeps 300000/100000 from ceiling to 4.
_QUOTA_DIGITS = 6


@dataclass(frozen=True)
class CpuCount:
    """How many CPUs this process may really use, and how that was counted.

    ``usable`` is ``max(1, min(affinity, ceil(quota_cpus)))`` when a cgroup quota exists, else
    ``affinity``. ``logical`` is what ``os.cpu_count()`` says; ``quota_cpus`` is the tightest
    cgroup CPU quota in CPUs (1.5 means 150 ms of CPU time per 100 ms), ``None`` when unlimited.

    >>> CpuCount(2, logical=12, affinity=12, quota_cpus=1.5, how="...").usable
    2
    """

    usable: int
    logical: int
    affinity: int
    quota_cpus: float | None
    how: str


@dataclass(frozen=True)
class _Quota:
    cpus: float
    source: str  # e.g. "cgroup v2 cpu.max"


def usable_cpus(
    *,
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    affinity: int | None = None,
) -> CpuCount:
    """Count the CPUs this process may use: affinity, capped by the tightest cgroup CPU quota.

    Reads cgroup v2 ``cpu.max`` and v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` for this
    process's cgroup and every parent up to the root. Missing, unreadable or garbled files
    count as "no quota"; this never raises. ``affinity`` overrides the measured affinity (tests).
    """
    affinity_cpus = _affinity_cpus() if affinity is None else affinity
    logical = max(os.cpu_count() or 1, affinity_cpus)
    quota = _tightest_quota(_read_text(proc_self_cgroup) or "", cgroup_root)
    if quota is None:
        how = f"affinity ({affinity_cpus} of {logical} logical CPUs)"
        return CpuCount(affinity_cpus, logical, affinity_cpus, None, how)
    usable = max(1, min(affinity_cpus, math.ceil(round(quota.cpus, _QUOTA_DIGITS))))
    how = _how(logical, affinity_cpus, quota)
    return CpuCount(usable, logical, affinity_cpus, quota.cpus, how)


def _how(logical: int, affinity: int, quota: _Quota) -> str:
    quota_text = f"{quota.source} quota {quota.cpus:g} CPUs"
    if quota.cpus < affinity:
        return f"{quota_text} (affinity {affinity})"
    return f"affinity ({affinity} of {logical} logical CPUs; {quota_text})"


def _affinity_cpus() -> int:
    """CPUs in this process's affinity mask; ``os.cpu_count()`` where the OS has no mask."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _tightest_quota(proc_cgroup_text: str, cgroup_root: Path) -> _Quota | None:
    """Smallest CPU quota over the v2 and v1 cgroups listed in ``/proc/self/cgroup`` text."""
    quotas: list[_Quota] = []
    for line in proc_cgroup_text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, cgroup_path = parts
        if hierarchy == "0" and not controllers:
            quotas.extend(_v2_quotas(cgroup_root, cgroup_path))
        elif "cpu" in controllers.split(","):
            quotas.extend(_v1_quotas(cgroup_root, controllers, cgroup_path))
    return min(quotas, key=lambda quota: quota.cpus, default=None)


def _v2_quotas(cgroup_root: Path, cgroup_path: str) -> list[_Quota]:
    """Quotas from ``cpu.max`` in the v2 cgroup and each parent: nested limits all apply."""
    quotas = []
    for directory in _dirs_up(cgroup_root, cgroup_path):
        cpus = _parse_cpu_max(_read_text(directory / "cpu.max"))
        if cpus is not None:
            quotas.append(_Quota(cpus, "cgroup v2 cpu.max"))
    return quotas


def _v1_quotas(cgroup_root: Path, controllers: str, cgroup_path: str) -> list[_Quota]:
    """Quotas from ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` in the v1 cpu cgroup and parents.

    In a container the cgroup path often names a host directory while the container's own
    cgroup is mounted at the root; walking up to the mount root reads those files too.
    """
    mount = _v1_cpu_mount(cgroup_root, controllers)
    if mount is None:
        return []
    quotas = []
    for directory in _dirs_up(mount, cgroup_path):
        quota_us = _parse_int(_read_text(directory / "cpu.cfs_quota_us"))
        period_us = _parse_int(_read_text(directory / "cpu.cfs_period_us"))
        cpus = _ratio(quota_us, period_us)
        if cpus is not None:
            quotas.append(_Quota(cpus, "cgroup v1 cpu.cfs_quota_us"))
    return quotas


def _v1_cpu_mount(cgroup_root: Path, controllers: str) -> Path | None:
    """The directory where the v1 hierarchy holding the cpu controller is mounted, if any."""
    for name in (controllers, *_V1_CPU_MOUNTS):
        if (cgroup_root / name).is_dir():
            return cgroup_root / name
    return None


def _dirs_up(mount: Path, cgroup_path: str) -> list[Path]:
    """``mount/<cgroup_path>`` and each parent up to ``mount``, deepest first.

    A path that climbs (``/../x``, seen with cgroup namespaces) cannot be placed under the
    mount, so only the mount root is read.
    """
    parts = [part for part in PurePosixPath(cgroup_path).parts if part not in ("/", ".")]
    if ".." in parts:
        parts = []
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _parse_cpu_max(text: str | None) -> float | None:
    """CPUs from a v2 ``cpu.max`` line such as ``"150000 100000"``; ``None`` for ``"max ..."``."""
    fields_ = (text or "").split()
    if len(fields_) != 2:
        return None
    return _ratio(_parse_int(fields_[0]), _parse_int(fields_[1]))


def _ratio(quota_us: int | None, period_us: int | None) -> float | None:
    """``quota / period`` in CPUs, or ``None`` when either is missing or not positive (v1 -1)."""
    if quota_us is None or period_us is None or quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def _parse_int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _read_text(path: Path) -> str | None:
    """The file's text, or ``None`` when it is missing, unreadable or not text."""
    try:
        return path.read_text(encoding="ascii")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class MachineFacts:
    """What a result needs to say about the machine it was measured on.

    Memory figures are bytes as ``psutil.virtual_memory()`` reports them; ``shm_bytes`` is the
    total size of ``/dev/shm`` (``None`` where there is none), which bounds the batches in
    flight between workers and the main process (Docker's default is 64 MB).
    """

    cpus: CpuCount
    total_memory_bytes: int
    available_memory_bytes: int
    shm_bytes: int | None
    platform: str
    python_version: str
    torch_version: str
    cuda_available: bool
    start_methods: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``cpus`` becomes a nested dict, ``start_methods`` a list."""
        data = asdict(self)
        data["start_methods"] = list(self.start_methods)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineFacts:
        """Inverse of ``to_dict``; unknown keys are ignored, a missing key raises ``ValueError``."""
        missing = [field.name for field in fields(cls) if field.name not in data]
        if missing:
            raise ValueError(f"machine facts lack {missing}")
        known = {field.name: data[field.name] for field in fields(cls)}
        known["cpus"] = CpuCount(**data["cpus"])
        known["start_methods"] = tuple(data["start_methods"])
        return cls(**known)


def machine_facts() -> MachineFacts:
    """Facts about this machine and interpreter, read now; imports torch.

    ``torch.cuda.is_available()`` initialises the CUDA driver unless
    ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` is set; forked workers then must not use CUDA.
    """
    memory = psutil.virtual_memory()
    torch_version, cuda_available = _torch_facts()
    return MachineFacts(
        cpus=usable_cpus(),
        total_memory_bytes=int(memory.total),
        available_memory_bytes=int(memory.available),
        shm_bytes=shm_bytes(),
        platform=platform.platform(),
        python_version=platform.python_version(),
        torch_version=torch_version,
        cuda_available=cuda_available,
        start_methods=tuple(multiprocessing.get_all_start_methods()),
    )


def shm_bytes(path: Path = Path("/dev/shm")) -> int | None:  # noqa: S108 - read, never written
    """Total size in bytes of the shared-memory filesystem at ``path``; ``None`` if absent."""
    try:
        return shutil.disk_usage(path).total
    except OSError:
        return None


# Batches in flight are warned about past this share of /dev/shm: the DataLoader is not its only
# user (pin_memory, other jobs, tensors the step shares), and a full /dev/shm kills a worker
# with a bus error instead of raising.
SHM_WARN_SHARE = 0.5


def shm_in_flight_bytes(workers: int, prefetch_factor: int, batch_bytes: int) -> int:
    """Bytes of batches held in shared memory at once: each worker keeps ``prefetch_factor``
    batches ready. Without workers nothing crosses a process boundary: 0."""
    return workers * prefetch_factor * batch_bytes if workers else 0


def shm_fix(in_flight_bytes: int) -> str:
    """What to change when batches in flight do not fit in /dev/shm."""
    suggested = max(1, math.ceil(2 * in_flight_bytes / 2**30))
    return (
        "use fewer workers or a lower prefetch_factor, or enlarge /dev/shm "
        f"(docker run --shm-size={suggested}g; on Kubernetes an emptyDir volume with "
        "medium: Memory at /dev/shm)"
    )


def shm_warning(
    workers: int, prefetch_factor: int, batch_bytes: int, shm_total_bytes: int | None
) -> str | None:
    """A warning with its fix when batches in flight would fill more than
    :data:`SHM_WARN_SHARE` of /dev/shm (``shm_total_bytes``; ``None``: no /dev/shm to check).

    >>> print(shm_warning(4, 2, 12 * 2**20, 64 * 2**20))  # doctest: +ELLIPSIS
    batches in flight need ~96.0 MiB of shared memory (4 workers x ...), more than half of ...
    """
    in_flight = shm_in_flight_bytes(workers, prefetch_factor, batch_bytes)
    if shm_total_bytes is None or in_flight <= SHM_WARN_SHARE * shm_total_bytes:
        return None
    return (
        f"batches in flight need ~{_mib(in_flight)} of shared memory ({workers} workers x "
        f"prefetch_factor {prefetch_factor} x {_mib(batch_bytes)} per batch), more than half "
        f"of /dev/shm ({_mib(shm_total_bytes)}): {shm_fix(in_flight)}"
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _torch_facts() -> tuple[str, bool]:
    import torch

    return str(torch.__version__), bool(torch.cuda.is_available())
