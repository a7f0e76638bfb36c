"""Targets built with the data libraries people use: a DataLoader subclass is measured and
reproduced as itself; loaders posing as datasets are refused with what to pass instead."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset

from loadertune import LoaderConfig, Workload, bench
from loadertune.cli.targets import resolve_data
from loadertune.records.errors import UsageError
from loadertune.report.verdict import warning_lines

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torchdata's own deprecations


def _rows(n: int = 640) -> TensorDataset:
    return TensorDataset(torch.arange(n * 4, dtype=torch.float32).reshape(n, 4))


def _stateful(**kwargs: Any) -> Any:
    from torchdata.stateful_dataloader import StatefulDataLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StatefulDataLoader(_rows(), **kwargs)


@pytest.mark.parametrize("override", [None, 32])
def test_a_stateful_dataloader_keeps_its_batch_size_shuffle_and_samplers(
    override: int | None,
) -> None:
    workload = Workload(_stateful(batch_size=64, shuffle=True), batch_size=override)
    size = override or 64
    # its own RandomSampler and BatchSampler are the class's, not the user's to pass again
    assert workload.keep_your_own() == []
    assert workload.fixed_kwargs() == {"batch_size": size, "shuffle": True, "drop_last": False}
    assert workload.epoch_batches() == 640 // size


def test_a_stateful_dataloader_is_measured_and_reproduced_as_itself() -> None:
    from torchdata.stateful_dataloader import StatefulDataLoader

    workload = Workload(_stateful(batch_size=64, shuffle=False, snapshot_every_n_steps=5))
    assert isinstance(workload.build_loader(LoaderConfig(0)), StatefulDataLoader)
    rebuilt = workload.loader(LoaderConfig(0))
    assert isinstance(rebuilt, StatefulDataLoader) and rebuilt.snapshot_every_n_steps == 5
    result = bench(workload, [LoaderConfig(0)], repeats=1, diagnose=False, warm_up=False)
    best = result.best
    assert best is not None and result.workload["loader_class"] == "StatefulDataLoader"
    assert best.loader_kwargs["batch_size"] == 64 and best.loader_kwargs["shuffle"] is False
    assert best.loader_kwargs["snapshot_every_n_steps"] == 5  # the user's own argument
    assert best.usage.startswith("StatefulDataLoader(dataset, **{'batch_size': 64")


class NeedsTag(DataLoader[Any]):
    """A subclass whose required argument is not kept on the loader under its name."""

    def __init__(self, dataset: Any, tag: str, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self._tag = tag


def test_a_subclass_that_cannot_be_rebuilt_falls_back_and_says_so() -> None:
    workload = Workload(NeedsTag(_rows(), "x", batch_size=64, shuffle=True))
    assert type(workload.build_loader(LoaderConfig(0))) is DataLoader
    fallback = workload.facts()["loader_fallback"]
    assert "not your NeedsTag: its argument 'tag' is not kept on the loader" in fallback
    result = bench(workload, [LoaderConfig(0)], repeats=1, diagnose=False, warm_up=False)
    assert warning_lines(result)[0].startswith("Warning: measured torch's DataLoader")


def test_a_custom_sampler_is_kept_and_the_batch_size_still_travels() -> None:
    sampler = SubsetRandomSampler(range(320))
    workload = Workload(DataLoader(_rows(), batch_size=16, sampler=sampler))
    assert workload.keep_your_own() == ["sampler"]
    assert workload.fixed_kwargs() == {"batch_size": 16, "drop_last": False}


def _shard(tmp_path: Path) -> str:
    import webdataset as wds

    path = tmp_path / "shard-000.tar"
    with wds.TarWriter(str(path)) as sink:
        for i in range(32):
            sink.write({"__key__": f"{i:04d}", "npy": np.zeros((2, 4), np.float32), "cls": "1"})
    return str(path)


def _pipeline(url: str) -> Any:
    import webdataset as wds

    return wds.WebDataset(url, shardshuffle=False, empty_check=False).decode().to_tuple("npy")


def test_a_webloader_is_refused_naming_what_to_pass(tmp_path: Path) -> None:
    import webdataset as wds

    loader = wds.WebLoader(_pipeline(_shard(tmp_path)).batched(8), batch_size=None)
    with pytest.raises(ValueError, match="runs a DataLoader of its own inside") as info:
        Workload(loader)
    assert "the WebDataset pipeline before .batched(...), with --batch-size" in str(info.value)


def test_a_batched_pipeline_is_refused_bare_and_measured_inside_an_unbatched_loader(
    tmp_path: Path,
) -> None:
    batched = _pipeline(_shard(tmp_path)).batched(8)
    with pytest.raises(ValueError, match="yields batches already"):
        Workload(batched, batch_size=8)
    workload = Workload(DataLoader(batched, batch_size=None))  # the loader it is
    result = bench(workload, [LoaderConfig(0)], repeats=1, diagnose=False, warm_up=False)
    (trial,) = result.trials
    assert trial.ok and trial.batches == 4 and trial.n_samples == [8] * 4


def test_an_unbatched_pipeline_is_measured(tmp_path: Path) -> None:
    workload = Workload(_pipeline(_shard(tmp_path)), batch_size=8)
    result = bench(workload, [LoaderConfig(0)], repeats=1, diagnose=False, warm_up=False)
    assert result.trials[0].ok and result.trials[0].batches == 4


def test_a_torchdata_nodes_loader_is_refused_naming_the_dataset() -> None:
    import torchdata.nodes as tn
    from torch.utils.data import SequentialSampler

    rows = _rows(16)
    node = tn.Batcher(tn.Mapper(tn.SamplerWrapper(SequentialSampler(rows)), rows.__getitem__), 4)
    with pytest.raises(UsageError, match=r"data\.py:loader is a Loader, an iterable of batches"):
        resolve_data(tn.Loader(node), "data.py:loader")


def test_a_generator_is_refused_saying_to_return_the_loader() -> None:
    def batches() -> Iterator[Any]:
        yield from DataLoader(_rows(16), batch_size=4)

    with pytest.raises(UsageError, match=r"data\.py:batches is a generator") as info:
        resolve_data(batches(), "data.py:batches")
    assert "return the DataLoader" in str(info.value)
    with pytest.raises(UsageError, match=r"batches\(\) returned a generator"):
        resolve_data(batches, "data.py:batches")


class Deprecated(TensorDataset):
    def __getitem__(self, index: int) -> Any:
        warnings.warn("old API, please do not call", DeprecationWarning, stacklevel=1)
        return super().__getitem__(index)


def test_a_librarys_warnings_are_kept_labelled_with_the_trial_not_printed_bare() -> None:
    workload = Workload(Deprecated(torch.zeros(64, 2)), batch_size=8)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = bench(workload, [LoaderConfig(0)], repeats=2, diagnose=False, warm_up=False)
    assert [str(w.message) for w in escaped] == []
    (line,) = warning_lines(result)
    assert line.startswith("Warning (w=0): DeprecationWarning raised in your code or a library")
    assert "(tests/test_real_libs.py:" in line and "not by loadertune: old API" in line
