"""The online loader's switch mechanics: configs change at batch boundaries and every epoch
still yields exactly the batches torch's loader yields with the same sampler and generator, in
the same order; a retiring config's batches are handed over, never dropped or fetched twice."""

from __future__ import annotations

import psutil
import pytest
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Dataset

from loadertune.online.control import Planned
from loadertune.online.loader import DataLoader
from loadertune.records.config import LoaderConfig

W0, W1, W2 = LoaderConfig(0), LoaderConfig(1), LoaderConfig(2)
W2P = LoaderConfig(2, persistent_workers=True)


class Numbered(Dataset[torch.Tensor]):
    """Sample ``i`` is ``[i]``: a batch shows which positions it holds."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([index])


def _epochs(loader: object, epochs: int) -> list[list[list[int]]]:
    return [[b.flatten().tolist() for b in loader] for _ in range(epochs)]  # type: ignore[attr-defined]


def _torch_epochs(seed: int, epochs: int, **kwargs: object) -> list[list[list[int]]]:
    generator = torch.Generator().manual_seed(seed)
    return _epochs(TorchDataLoader(Numbered(50), generator=generator, **kwargs), epochs)


def _online(plan: list[tuple[LoaderConfig, int]], seed: int, **kwargs: object) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(Numbered(50), generator=generator, controller=Planned(plan), **kwargs)


def test_without_a_switch_it_is_torchs_loader() -> None:
    loader = _online([(W0, 1)], seed=3, batch_size=8, shuffle=True)
    assert _epochs(loader, 2) == _torch_epochs(3, 2, batch_size=8, shuffle=True)


@pytest.mark.workers
@pytest.mark.parametrize(
    "plan",
    [
        [(W0, 2), (W2, 10)],
        [(W2, 3), (W0, 1), (W1, 100)],
        [(W0, 1), (W2P, 2), (W0, 100)],
    ],
    ids=["0-then-2", "2-0-1", "persistent-between"],
)
def test_switching_mid_epoch_keeps_every_batch_once_in_torchs_order(
    plan: list[tuple[LoaderConfig, int]],
) -> None:
    loader = _online(plan, seed=7, batch_size=6, shuffle=True)
    try:
        got = _epochs(loader, 2)
    finally:
        loader.close()
    assert got == _torch_epochs(7, 2, batch_size=6, shuffle=True)
    stretches = [[t.config for t in epoch] for epoch in loader.stages]
    assert stretches == [[c for c, _ in plan]] * 2


@pytest.mark.workers
def test_the_global_rng_draws_are_torchs_without_a_generator() -> None:
    torch.manual_seed(11)
    expected = _epochs(TorchDataLoader(Numbered(40), batch_size=5, shuffle=True), 2)
    torch.manual_seed(11)
    loader = DataLoader(
        Numbered(40), batch_size=5, shuffle=True, controller=Planned([(W0, 2), (W2, 99)])
    )
    try:
        assert _epochs(loader, 2) == expected
    finally:
        loader.close()


@pytest.mark.workers
def test_unordered_delivery_still_gives_each_batch_once() -> None:
    unordered = LoaderConfig(2, in_order=False)
    loader = _online([(W0, 1), (unordered, 99)], seed=5, batch_size=4, shuffle=True)
    try:
        got = _epochs(loader, 1)[0]
    finally:
        loader.close()
    expected = _torch_epochs(5, 1, batch_size=4, shuffle=True)[0]
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))


def test_single_indices_without_automatic_batching() -> None:
    loader = _online([(W0, 3), (W0, 99)], seed=1, batch_size=None, shuffle=True)
    got = _epochs(loader, 1)
    assert got == _torch_epochs(1, 1, batch_size=None, shuffle=True)


@pytest.mark.workers
def test_each_stretch_records_its_batches_and_the_step_between() -> None:
    loader = _online([(W0, 3), (W2, 99)], seed=2, batch_size=5, shuffle=False)
    try:
        for _ in loader:
            pass
    finally:
        loader.close()
    first, second = loader.stages[0]
    assert first.batches == 3 and second.batches == 7
    assert all(s >= r for s, r in zip(second.step_end_s, second.ready_s, strict=True))


@pytest.mark.workers
def test_no_worker_outlives_the_loader() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    loader = _online([(W0, 1), (W2P, 99)], seed=2, batch_size=5)
    for index, _ in enumerate(loader):
        if index == 4:
            break  # the user's loop leaves mid-epoch
    loader.close()
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}
    alive = {pid for pid in after - before if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}
    assert alive <= _helpers()


def _helpers() -> set[int]:
    from loadertune.engine.harness import _multiprocessing_helpers

    return _multiprocessing_helpers()


class DiesInWorker(Numbered):
    """The worker that fetches ``bad`` is killed (as the out-of-memory killer does); in the
    main process the sample loads."""

    def __init__(self, n: int, bad: int) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, index: int) -> torch.Tensor:
        import os
        import signal

        if index == self.bad and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


class HangsInWorker(DiesInWorker):
    def __getitem__(self, index: int) -> torch.Tensor:
        import time

        if index == self.bad and torch.utils.data.get_worker_info() is not None:
            time.sleep(60)
        return Numbered.__getitem__(self, index)


@pytest.mark.workers
@pytest.mark.parametrize(
    "dataset", [DiesInWorker(50, bad=23), HangsInWorker(50, bad=23)], ids=["killed", "hung"]
)
def test_a_broken_config_falls_back_with_no_batch_lost_or_repeated(
    dataset: Numbered, caplog: pytest.LogCaptureFixture
) -> None:
    loader = DataLoader(
        dataset,
        batch_size=1,
        timeout=2,
        controller=Planned([(W0, 3), (W2, 99)]),
    )
    try:
        got = _epochs(loader, 1)[0]
    finally:
        loader.close()
    assert got == [[i] for i in range(50)]
    assert any("falling back to w=0" in r.message for r in caplog.records)
    assert [t.config for t in loader.stages[0]] == [W0, W2, W0]


@pytest.mark.workers
def test_the_users_exception_in_a_worker_is_not_taken_for_a_broken_config() -> None:
    class Raises(Numbered):
        def __getitem__(self, index: int) -> torch.Tensor:
            if index == 7:
                raise KeyError("missing label 7")
            return super().__getitem__(index)

    loader = DataLoader(Raises(20), batch_size=2, controller=Planned([(W0, 1), (W2, 99)]))
    with pytest.raises(KeyError, match="missing label 7"):
        _epochs(loader, 1)
    loader.close()


@pytest.mark.workers
def test_once_settled_the_other_configs_idle_workers_are_stopped() -> None:
    w1p = LoaderConfig(1, persistent_workers=True)
    loader = _online([(w1p, 3), (W0, 99)], seed=1, batch_size=5)
    try:
        _epochs(loader, 1)
        pool = loader._pool
        assert pool is not None
        [kept] = pool.built.values()  # w=1's persistent loader, idle between epochs
        [worker] = kept.iterator._workers
        assert worker.is_alive()
        pool.keep_only(W0)
        assert not worker.is_alive() and not pool.built
        assert _epochs(loader, 1)[0] == [list(range(k, k + 5)) for k in range(0, 50, 5)]
    finally:
        loader.close()


class GrowsInWorker(Numbered):
    """A worker keeps 8 MiB for every sample it loads (a cache that never stops growing); the
    main process keeps nothing."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.kept: list[bytes] = []  # each worker's copy grows on its own

    def __getitem__(self, index: int) -> torch.Tensor:
        import time

        if torch.utils.data.get_worker_info() is not None:
            self.kept.append(b"x" * 8 * 2**20)
            time.sleep(0.005)
        return super().__getitem__(index)


@pytest.mark.workers
def test_a_config_past_the_memory_limit_falls_back_with_no_batch_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from loadertune.engine.memory import tree_memory_bytes

    limit = tree_memory_bytes()[0] + 100 * 2**20
    n = 200
    loader = DataLoader(
        GrowsInWorker(n), batch_size=2, max_memory=limit, controller=Planned([(W0, 2), (W2, 999)])
    )
    try:
        got = _epochs(loader, 1)[0]
    finally:
        loader.close()
    assert got == [[i, i + 1] for i in range(0, n, 2)]
    [fell] = [r.message for r in caplog.records if "falling back to w=0" in r.message]
    assert "memory" in fell
    assert [t.config for t in loader.stages[0]] == [W0, W2, W0]


def _collate_refusing_30(samples: list[torch.Tensor]) -> torch.Tensor:
    if any(int(s) == 30 for s in samples):
        raise TypeError("cannot collate sample 30")
    return torch.stack(samples)


@pytest.mark.workers
@pytest.mark.parametrize("plan", [[(W0, 99)], [(W0, 2), (W2, 99)]], ids=["main", "worker"])
def test_the_users_collate_error_reaches_the_user(plan: list[tuple[LoaderConfig, int]]) -> None:
    loader = DataLoader(
        Numbered(50), batch_size=5, collate_fn=_collate_refusing_30, controller=Planned(plan)
    )
    seen: list[list[int]] = []
    try:
        with pytest.raises(TypeError, match="cannot collate sample 30"):
            seen.extend(b.flatten().tolist() for b in loader)
    finally:
        loader.close()
    assert seen == [list(range(k, k + 5)) for k in range(0, 30, 5)]  # every batch before it
    assert [t.config for t in loader.stages[0]] == [c for c, _ in plan]  # no fallback taken


class _Told(Planned):
    """A plan that notes each epoch's end it is told (the stretch's batches)."""

    def __init__(self, plan: list[tuple[LoaderConfig, int]]) -> None:
        super().__init__(plan)
        self.told: list[int] = []

    def epoch_ended(self, stage: object) -> None:
        self.told.append(stage.batches)  # type: ignore[attr-defined]


def test_an_epoch_taken_whole_without_asking_past_its_end_is_told_ended() -> None:
    """Lightning's loops (an islice of the epoch's length) never ask past the last batch: the
    epoch counts as ended as the next one starts, or at ``end_epoch()``."""
    import itertools

    told = _Told([(W0, 99)])
    loader = DataLoader(Numbered(20), batch_size=5, controller=told)
    held = []
    for _ in range(2):
        iterator = iter(loader)
        held.append(iterator)  # still referenced: not closed by collection
        assert len(list(itertools.islice(iterator, len(loader)))) == 4
    assert len(told.told) == 1  # the first, told as the second started
    loader.end_epoch()
    assert len(told.told) == 2
    loader.end_epoch()  # once only
    assert len(told.told) == 2


def test_an_epoch_left_before_its_last_batch_is_not_told_ended() -> None:
    told = _Told([(W0, 99)])
    loader = DataLoader(Numbered(20), batch_size=5, controller=told)
    iterator = iter(loader)
    next(iterator)
    loader.end_epoch()
    assert told.told == []
