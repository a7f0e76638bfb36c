"""tune and the memory limit: a config stopped for memory is rejected with its reason, and the
search goes on."""

from __future__ import annotations

import pytest

import fakes
from loadertune import LoaderConfig, TrialError, Workload, tune
from loadertune.engine.memory import tree_memory_bytes
from loadertune.tuning.tune import rejection
from sample_data import Hoards

MiB = 2**20


def test_a_memory_stop_is_a_rejection_with_its_figures() -> None:
    trial = fakes.failed(2, "x")
    trial.error = TrialError("memory", "stopped: memory grew 410 MiB ...; a full epoch would ...")
    assert rejection(trial, None) == "rejected: memory grew 410 MiB ...; a full epoch would ..."


def test_a_measured_peak_over_the_limit_is_still_a_rejection() -> None:
    trial = fakes.trial(2, 0.01)  # its peak: 200 MiB
    assert rejection(trial, 150 * MiB) == (
        "rejected: peak memory 0.20 GiB over the limit of 0.15 GiB"
    )
    assert rejection(trial, 300 * MiB) is None


@pytest.mark.workers
def test_tune_rejects_the_configs_stopped_for_memory_and_picks_among_the_rest() -> None:
    limit = tree_memory_bytes()[0] + 150 * MiB
    workload = Workload(Hoards(4000), batch_size=4, shuffle=False)
    result = tune(workload, budget_s=10, strategy="grid", max_workers=2, max_memory_bytes=limit)
    assert result.tuning is not None
    rejected = result.tuning["rejected"]
    assert set(rejected) == {"w=1", "w=2"}  # the configs whose workers hoard
    assert all(why.startswith("rejected: memory ") for why in rejected.values())
    assert result.pick == LoaderConfig(0) and result.settings["max_memory_bytes"] == limit
    memory_failures = [t for t in result.trials if t.error and t.error.kind == "memory"]
    assert {t.config.num_workers for t in memory_failures} == {1, 2}
