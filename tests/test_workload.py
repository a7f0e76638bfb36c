from __future__ import annotations

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from loadertune import LoaderConfig, Workload
from loadertune.engine.probe import IndexRecorder, ProbedBatch
from sample_data import Rows, Stream


def test_a_dataset_gets_the_classic_defaults() -> None:
    workload = Workload(Rows(100))
    assert workload.epoch_batches() == 2  # batch 64
    assert workload.fixed_kwargs() == {"batch_size": 64, "shuffle": True, "drop_last": False}
    assert workload.baseline_config() == LoaderConfig()


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_a_dataloader_keeps_sampler_collate_and_drop_last_and_gives_its_knobs() -> None:
    given = DataLoader(
        Rows(100),
        batch_size=8,
        drop_last=True,
        num_workers=3,
        prefetch_factor=4,
        collate_fn=torch.stack,
    )
    workload = Workload(given)
    assert workload.epoch_batches() == 12
    assert workload.fixed_kwargs() == {"batch_size": 8, "shuffle": False, "drop_last": True}
    assert workload.baseline_config() == LoaderConfig(3, prefetch_factor=4)
    batch = next(iter(workload.build_loader(LoaderConfig(0))))
    assert isinstance(batch, ProbedBatch) and batch.batch.shape == (8, 8)


def test_a_custom_batch_sampler_is_kept_and_recorded() -> None:
    sampler = BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False)
    workload = Workload(DataLoader(Rows(10), batch_sampler=sampler))
    recorder = IndexRecorder([])
    batches = list(workload.build_loader(LoaderConfig(0), recorder))
    assert len(batches) == 4
    assert recorder.handed == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert recorder.indices_of(3) == [9] and recorder.indices_of(4) is None


def test_batch_size_overrides_a_dataloader() -> None:
    assert Workload(DataLoader(Rows(100), batch_size=8), batch_size=50).epoch_batches() == 2


def test_an_iterable_dataset_has_no_epoch() -> None:
    workload = Workload(Stream(), batch_size=4)
    assert workload.is_iterable and workload.epoch_batches() is None
    assert workload.facts()["iterable"] is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"epochs": 0}, "epochs must be >= 1"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Workload(Rows(10), **kwargs)  # type: ignore[arg-type]


def _pad(samples: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(samples, batch_first=True)


def test_what_a_result_cannot_carry_is_named() -> None:
    plain = Workload(DataLoader(Rows(20), batch_size=4, shuffle=True))
    assert plain.keep_your_own() == []
    padded = Workload(DataLoader(Rows(20), batch_size=4, collate_fn=_pad, worker_init_fn=print))
    assert padded.keep_your_own() == ["collate_fn", "worker_init_fn"]
    assert padded.fixed_kwargs() == {"batch_size": 4, "shuffle": False, "drop_last": False}
    buckets = BatchSampler(SequentialSampler(range(20)), batch_size=3, drop_last=False)

    class Buckets(BatchSampler):
        pass

    custom = Workload(DataLoader(Rows(20), batch_sampler=Buckets(buckets.sampler, 3, False)))
    assert custom.keep_your_own() == ["batch_sampler"]
    assert custom.fixed_kwargs() == {}  # batch_size/shuffle would conflict with a batch_sampler


def test_the_users_loader_is_rebuilt_with_a_config() -> None:
    given = DataLoader(Rows(20), batch_size=4, collate_fn=_pad)
    loader = Workload(given).loader(LoaderConfig(0))
    assert loader.collate_fn is _pad and len(loader) == 5
    assert [b.shape for b in loader] == [b.shape for b in given]


def test_nothing_to_measure_is_bad_input() -> None:
    with pytest.raises(ValueError, match=r"the dataset is empty \(len 0\)"):
        Workload(Rows(0))
    with pytest.raises(
        ValueError, match="batch size 64 with drop_last=True leaves nothing from 10"
    ):
        Workload(DataLoader(Rows(10), batch_size=64, drop_last=True))
