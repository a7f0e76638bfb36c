from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from loadertune import LoaderConfig

configs = st.builds(
    lambda n, pf, persist, pin, ctx, order: LoaderConfig(
        num_workers=n,
        prefetch_factor=pf if n else None,
        persistent_workers=persist and n > 0,
        pin_memory=pin,
        multiprocessing_context=ctx if n else None,
        in_order=order,
    ),
    st.integers(0, 64),
    st.one_of(st.none(), st.integers(1, 16)),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, "fork", "spawn", "forkserver"]),
    st.booleans(),
)


@given(configs)
def test_kwargs_round_trip(config: LoaderConfig) -> None:
    assert LoaderConfig.from_kwargs(config.to_kwargs()) == config
    assert hash(LoaderConfig.from_kwargs(config.to_kwargs())) == hash(config)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@given(configs)
def test_dataloader_accepts_the_kwargs(config: LoaderConfig) -> None:
    DataLoader(TensorDataset(torch.zeros(4)), batch_size=2, **config.to_kwargs())


def test_kwargs_are_explicit() -> None:
    assert LoaderConfig().to_kwargs() == {
        "num_workers": 0,
        "persistent_workers": False,
        "pin_memory": False,
    }
    assert LoaderConfig(4).to_kwargs()["prefetch_factor"] == 2
    assert LoaderConfig(4, prefetch_factor=2) == LoaderConfig(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
        ({"num_workers": 2.5}, "got 2.5"),
        (
            {"num_workers": 2, "prefetch_factor": 0},
            "prefetch_factor must be an integer >= 1, got 0",
        ),
        ({"num_workers": 0, "prefetch_factor": 4}, "prefetch_factor needs num_workers > 0"),
        (
            {"num_workers": 0, "persistent_workers": True},
            "persistent_workers needs num_workers > 0",
        ),
        ({"num_workers": 1, "multiprocessing_context": "thread"}, "got 'thread'"),
        ({"num_workers": 0, "multiprocessing_context": "spawn"}, "needs num_workers > 0"),
    ],
)
def test_bad_values_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoaderConfig(**kwargs)  # type: ignore[arg-type]


def test_label_and_stock() -> None:
    config = LoaderConfig(4, prefetch_factor=3, persistent_workers=True, in_order=False)
    assert config.label() == "w=4 pf=3 persist unordered"
    assert config.in_flight_batches == 12
    assert LoaderConfig().in_flight_batches == 1
