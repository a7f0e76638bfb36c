"""The diagnosis probes on real data: step alone, loader alone, batch facts, batched fetch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from in_memory import broken_step, pixels, tensors, train_step
from loadertune import LoaderConfig, Workload, profile
from loadertune.engine.diagnose import batch_facts, batched_fetch, diagnose
from sample_data import Rows


def test_the_step_alone_and_the_loader_alone_are_measured() -> None:
    out = diagnose(Workload(tensors, step=train_step, batch_size=32), LoaderConfig(0))
    assert "errors" not in out
    assert out["step_alone"]["samples_per_s"] > 0 and out["step_alone"]["batches"] >= 1
    assert out["loader_alone"]["samples_per_s"] > 0 and out["loader_alone"]["error"] is None
    assert out["batch"]["bytes"] == 32 * 16 * 4 + 32 * 8  # float32 features, int64 labels


def test_without_a_step_there_is_no_step_alone() -> None:
    out = diagnose(Workload(tensors, batch_size=32), LoaderConfig(0))
    assert out["step_alone"] is None and out["loader_alone"]["samples_per_s"] > 0


def test_a_tensor_dataset_is_fetched_faster_a_batch_at_a_time() -> None:
    probe = batched_fetch(Workload(tensors, batch_size=64))
    assert probe is not None and probe["per_sample_s"] > 0 and probe["batched_s"] > 0
    assert probe["speedup"] == pytest.approx(probe["per_sample_s"] / probe["batched_s"])


def test_a_dataset_that_takes_no_list_of_indices_is_not_probed() -> None:
    assert batched_fetch(Workload(Rows(64), batch_size=8)) is None


def test_a_dataset_that_is_not_in_memory_is_not_probed() -> None:
    assert batched_fetch(Workload(Rows(64, cost_s=0.002), batch_size=8)) is None


def test_whole_byte_floats_could_travel_as_uint8() -> None:
    (batch,) = next(iter(torch.utils.data.DataLoader(pixels, batch_size=16)))
    facts = batch_facts([batch])
    assert facts["uint8_lossless"] is True and facts["float_dtypes"] == ["float32"]
    assert facts["float_bytes"] == 16 * 3 * 8 * 8 * 4
    assert batch_facts([batch + 0.5])["uint8_lossless"] is False


def test_a_step_that_raises_is_recorded_not_raised() -> None:
    out = diagnose(Workload(tensors, step=broken_step, batch_size=32), LoaderConfig(0))
    assert "RuntimeError: step exploded" in out["errors"]["step_alone"]
    assert out["loader_alone"]["samples_per_s"] > 0  # the other probes still ran


def test_the_diagnosis_leaves_torch_as_it_found_it() -> None:
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    diagnose(Workload(tensors, step=train_step, batch_size=32), LoaderConfig(0))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads


@pytest.mark.workers
def test_profile_measures_a_loader_as_configured_and_explains_it() -> None:
    loader = torch.utils.data.DataLoader(tensors, batch_size=32, num_workers=1)
    result = profile(loader, train_step, repeats=1)
    assert [s.config for s in result.summaries()] == [LoaderConfig(1)]
    assert result.diagnosis is not None and result.diagnosis["config"] == "w=1"
    verdict = result.verdict
    assert verdict is not None and verdict["kind"] in ("input", "compute", "startup", "transfer")
    assert verdict["sentence"]


def test_a_workload_copy_without_a_step_keeps_the_loader_settings() -> None:
    workload = Workload(tensors, step=train_step, batch_size=32)
    bare = dataclasses.replace(workload, step=None)
    assert bare.step is None and bare.fixed_kwargs() == workload.fixed_kwargs()
