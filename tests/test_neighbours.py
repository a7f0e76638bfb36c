"""What other processes took from our CPUs while a check measured: the arithmetic on samples,
the warning and its threshold, and the quota under which the counters are not ours."""

from __future__ import annotations

import pytest

from loadertune.engine import machine, neighbours
from loadertune.engine.machine import CpuCount
from loadertune.engine.neighbours import CpuSample, contention_warning, others_cpus


def test_others_are_the_busy_cpu_seconds_that_were_not_ours_over_the_wall_time() -> None:
    before = CpuSample(wall_s=10.0, busy_s=100.0, own_s=5.0)
    after = CpuSample(wall_s=14.0, busy_s=108.0, own_s=9.0)  # 8 busy, 4 of them ours
    assert others_cpus(before, after) == pytest.approx(1.0)
    assert others_cpus(before, CpuSample(14.0, 103.0, 9.0)) == 0.0  # counters' rounding
    assert others_cpus(None, after) is None and others_cpus(after, before) is None


def test_the_warning_names_the_share_and_the_fix_past_its_threshold() -> None:
    assert contention_warning(None, 2) is None
    assert contention_warning(neighbours.OTHERS_WARN_CPUS / 2, 2) is None
    warning = contention_warning(1.04, 2)
    assert warning is not None and warning.startswith("other processes kept 1.0 of 2 usable")
    assert "run the check where nothing else runs" in warning


def test_under_a_quota_below_the_affinity_the_counters_are_not_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quota = CpuCount(2, logical=64, affinity=64, quota_cpus=2.0, how="cgroup v2 quota")
    monkeypatch.setattr(machine, "usable_cpus", lambda: quota)
    assert neighbours.sample() is None
    whole = CpuCount(2, logical=2, affinity=2, quota_cpus=None, how="affinity")
    monkeypatch.setattr(machine, "usable_cpus", lambda: whole)
    now = neighbours.sample()
    assert now is not None and now.busy_s > 0 and now.own_s > 0
