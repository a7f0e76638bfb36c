"""Usable CPUs from fake cgroup v1/v2 trees, and the machine facts record."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadertune.engine.machine import (
    CpuCount,
    MachineFacts,
    machine_facts,
    shm_bytes,
    usable_cpus,
)

MACHINE_PY = Path(__file__).resolve().parents[1] / "src/loadertune/engine/machine.py"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def count(root: Path, proc_cgroup: str, affinity: int = 12) -> CpuCount:
    """usable_cpus over a fake tree: ``root/proc`` is /proc/self/cgroup, ``root/cg`` the mount."""
    write(root / "proc", proc_cgroup)
    (root / "cg").mkdir(exist_ok=True)
    return usable_cpus(proc_self_cgroup=root / "proc", cgroup_root=root / "cg", affinity=affinity)


def v2(root: Path, cpu_max: str, cgroup: str = "kubepods/pod1") -> CpuCount:
    write(root / "cg" / cgroup / "cpu.max", cpu_max)
    return count(root, f"0::/{cgroup}\n")


def v1(root: Path, quota: str, period: str = "100000", mount: str = "cpu,cpuacct") -> CpuCount:
    write(root / "cg" / mount / "docker/abc/cpu.cfs_quota_us", quota)
    write(root / "cg" / mount / "docker/abc/cpu.cfs_period_us", period)
    return count(root, f"4:{mount}:/docker/abc\n")


# cgroup v2


def test_v2_max_means_no_quota(tmp_path: Path) -> None:
    cpus = v2(tmp_path, "max 100000\n")
    assert cpus.usable == 12
    assert cpus.quota_cpus is None
    assert cpus.how.startswith("affinity (12 of ")


def test_v2_fractional_quota_rounds_up(tmp_path: Path) -> None:
    cpus = v2(tmp_path, "150000 100000\n")
    assert (cpus.usable, cpus.affinity, cpus.quota_cpus) == (2, 12, 1.5)
    assert cpus.how == "cgroup v2 cpu.max quota 1.5 CPUs (affinity 12)"


def test_v2_quota_below_affinity_caps_usable(tmp_path: Path) -> None:
    assert v2(tmp_path, "400000 100000").usable == 4


def test_v2_whole_quota_does_not_round_up(tmp_path: Path) -> None:
    assert v2(tmp_path, "300000 100000").usable == 3


def test_v2_tiny_quota_still_gives_one_cpu(tmp_path: Path) -> None:
    cpus = v2(tmp_path, "10000 100000")
    assert (cpus.usable, cpus.quota_cpus) == (1, 0.1)


def test_affinity_below_quota_wins_and_how_says_so(tmp_path: Path) -> None:
    write(tmp_path / "cg/pod/cpu.max", "800000 100000")
    cpus = count(tmp_path, "0::/pod\n", affinity=2)
    assert (cpus.usable, cpus.quota_cpus) == (2, 8.0)
    assert cpus.how.startswith("affinity (2 of ")
    assert "cgroup v2 cpu.max quota 8 CPUs" in cpus.how


@pytest.mark.parametrize(
    ("parent", "child", "expected"),
    [
        ("200000 100000", "max 100000", 2),  # only the parent limits
        ("200000 100000", "300000 100000", 2),  # the parent is tighter
        ("400000 100000", "100000 100000", 1),  # the child is tighter
    ],
)
def test_v2_nested_quotas_take_the_smallest(
    tmp_path: Path, parent: str, child: str, expected: int
) -> None:
    write(tmp_path / "cg/kubepods/cpu.max", parent)
    write(tmp_path / "cg/kubepods/pod1/cpu.max", child)
    assert count(tmp_path, "0::/kubepods/pod1\n").usable == expected


def test_v2_quota_at_the_mount_root_counts(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu.max", "250000 100000")
    assert count(tmp_path, "0::/\n").usable == 3


def test_v2_path_that_climbs_reads_only_the_root(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu.max", "200000 100000")
    write(tmp_path / "cpu.max", "100000 100000")  # outside the mount: must not be read
    assert count(tmp_path, "0::/../..\n").usable == 2


# cgroup v1


def test_v1_quota(tmp_path: Path) -> None:
    cpus = v1(tmp_path, "200000")
    assert (cpus.usable, cpus.quota_cpus) == (2, 2.0)
    assert "cgroup v1 cpu.cfs_quota_us" in cpus.how


def test_v1_minus_one_means_no_quota(tmp_path: Path) -> None:
    cpus = v1(tmp_path, "-1")
    assert (cpus.usable, cpus.quota_cpus) == (12, None)


def test_v1_cpu_only_mount(tmp_path: Path) -> None:
    assert v1(tmp_path, "150000", mount="cpu").usable == 2


def test_v1_separate_cpu_and_cpuacct_mounts(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu/cpu.cfs_quota_us", "300000")
    write(tmp_path / "cg/cpu/cpu.cfs_period_us", "100000")
    (tmp_path / "cg/cpuacct").mkdir(parents=True)
    assert count(tmp_path, "2:cpuacct:/\n1:cpu:/\n").usable == 3


def test_v1_container_path_missing_falls_back_to_mount_root(tmp_path: Path) -> None:
    # Inside a container /proc/self/cgroup names the host path, but the mount shows our cgroup.
    write(tmp_path / "cg/cpu,cpuacct/cpu.cfs_quota_us", "50000")
    write(tmp_path / "cg/cpu,cpuacct/cpu.cfs_period_us", "100000")
    cpus = count(tmp_path, "4:cpu,cpuacct:/docker/abc\n")
    assert (cpus.usable, cpus.quota_cpus) == (1, 0.5)


def test_hybrid_v2_line_without_cpu_max_still_reads_v1(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu/cpu.cfs_quota_us", "400000")
    write(tmp_path / "cg/cpu/cpu.cfs_period_us", "100000")
    assert count(tmp_path, "1:cpu:/\n0::/\n").usable == 4


def test_v1_and_v2_quotas_take_the_smallest(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu/cpu.cfs_quota_us", "400000")
    write(tmp_path / "cg/cpu/cpu.cfs_period_us", "100000")
    write(tmp_path / "cg/cpu.max", "300000 100000")
    cpus = count(tmp_path, "1:cpu:/\n0::/\n")
    assert cpus.usable == 3
    assert "cgroup v2" in cpus.how


# missing, unreadable and garbled files


def test_missing_proc_cgroup_means_affinity(tmp_path: Path) -> None:
    cpus = usable_cpus(
        proc_self_cgroup=tmp_path / "absent", cgroup_root=tmp_path / "absent2", affinity=3
    )
    assert (cpus.usable, cpus.quota_cpus) == (3, None)


def test_missing_cgroup_files_mean_no_quota(tmp_path: Path) -> None:
    cpus = count(tmp_path, "0::/kubepods/pod1\n4:cpu,cpuacct:/docker/abc\n")
    assert (cpus.usable, cpus.quota_cpus) == (12, None)


def test_unreadable_cpu_max_means_no_quota(tmp_path: Path) -> None:
    (tmp_path / "cg/pod/cpu.max").mkdir(parents=True)  # reading a directory raises OSError
    assert count(tmp_path, "0::/pod\n").quota_cpus is None


@pytest.mark.parametrize(
    "cpu_max",
    ["", "garbage", "max", "150000", "0 100000", "-5 100000", "150000 0", "1.5 1", "1 2 3"],
)
def test_garbled_cpu_max_means_no_quota(tmp_path: Path, cpu_max: str) -> None:
    assert v2(tmp_path, cpu_max).quota_cpus is None


@pytest.mark.parametrize(("quota", "period"), [("abc", "100000"), ("200000", ""), ("", "")])
def test_garbled_v1_files_mean_no_quota(tmp_path: Path, quota: str, period: str) -> None:
    assert v1(tmp_path, quota, period).quota_cpus is None


def test_non_text_files_mean_no_quota(tmp_path: Path) -> None:
    (tmp_path / "cg/pod").mkdir(parents=True)
    (tmp_path / "cg/pod/cpu.max").write_bytes(b"\xff\xfe 100000")
    assert count(tmp_path, "0::/pod\n").quota_cpus is None


def test_garbled_proc_cgroup_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "cg/cpu.max", "100000 100000")
    cpus = count(tmp_path, "nonsense\n::\n7\n\n0::/\n", affinity=4)
    assert cpus.usable == 1


@settings(max_examples=60, deadline=None)
@given(
    quota_us=st.integers(1, 10**7),
    period_us=st.integers(1_000, 1_000_000),
    affinity=st.integers(1, 256),
)
def test_usable_is_affinity_capped_by_rounded_up_quota(
    quota_us: int, period_us: int, affinity: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "cg/cpu.max", f"{quota_us} {period_us}\n")
        cpus = count(Path(tmp), "0::/\n", affinity=affinity)
    quota = quota_us / period_us
    assert cpus.quota_cpus == quota
    assert cpus.usable == max(1, min(affinity, math.ceil(round(quota, 6))))
    assert 1 <= cpus.usable <= affinity


# this machine


def test_real_machine_counts_affinity() -> None:
    cpus = usable_cpus()
    assert cpus.affinity == len(os.sched_getaffinity(0))
    assert 1 <= cpus.usable <= cpus.affinity <= cpus.logical
    assert cpus.how


def test_machine_facts_round_trip_through_json() -> None:
    import torch

    facts = machine_facts()
    assert facts.torch_version == torch.__version__
    assert facts.total_memory_bytes >= facts.available_memory_bytes > 0
    assert "spawn" in facts.start_methods
    data = json.loads(json.dumps(facts.to_dict()))
    assert isinstance(data["cpus"], dict)
    assert MachineFacts.from_dict(data) == facts


def test_from_dict_ignores_unknown_keys_and_names_missing_ones() -> None:
    data = machine_facts().to_dict()
    assert MachineFacts.from_dict({**data, "added_later": 1}) == MachineFacts.from_dict(data)
    del data["platform"]
    with pytest.raises(ValueError, match="platform"):
        MachineFacts.from_dict(data)


def test_shm_bytes(tmp_path: Path) -> None:
    size = shm_bytes(tmp_path)
    assert size is not None
    assert size > 0
    assert shm_bytes(tmp_path / "absent") is None


def test_module_does_not_import_torch() -> None:
    # Load the file alone (not via the package, whose other modules may import torch).
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(MACHINE_PY)!r})\n"
        "module = sys.modules['m'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'torch' not in sys.modules, 'machine.py imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shm_warning_past_half_of_dev_shm_names_the_figures_and_the_fix() -> None:
    from loadertune.engine.machine import shm_warning

    mib = 2**20
    assert shm_warning(4, 2, 4 * mib, 64 * mib) is None  # 32 MiB: half, not more
    warning = shm_warning(4, 2, 5 * mib, 64 * mib)
    assert warning == (
        "batches in flight need ~40.0 MiB of shared memory (4 workers x prefetch_factor 2 x "
        "5.0 MiB per batch), more than half of /dev/shm (64.0 MiB): use fewer workers or a "
        "lower prefetch_factor, or enlarge /dev/shm (docker run --shm-size=1g; on Kubernetes "
        "an emptyDir volume with medium: Memory at /dev/shm)"
    )
    assert shm_warning(0, 2, 5 * mib, 1) is None  # no workers: nothing crosses processes
    assert shm_warning(32, 4, 20 * mib, None) is None  # no /dev/shm to check
    assert "--shm-size=5g" in (shm_warning(32, 4, 20 * mib, 64 * mib) or "")  # 2 x 2.5 GiB
