"""The Lightning callback: the training loader rebuilt as ours and tuned during the fit, every
epoch training each sample once and as many batches as before; reloads, batch limits, a
loader of ours returned by the module, Lightning re-creating ours to inject its sampler,
validation left alone unless asked, the pick in the loggers, the user's errors as raised,
DDP on 2 CPU processes; and the ImportError without Lightning."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import torch
from lightning.pytorch.loggers.logger import Logger
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import DistributedSampler

import loadertune
from lightning_job import SAMPLES, Recording, plain, trainer
from loadertune.lightning import DataLoaderTuner
from loadertune.records.errors import LoadertuneWarning
from sample_data import Indexed
from test_online import _children, _helpers
from test_ranks import LIMIT_S, _assert_none_left, _env

BATCHES = SAMPLES // 8


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LOADERTUNE_CACHE_DIR", str(folder))
    return folder


def _assert_each_sample_once(seen: dict[int, list[int]], epochs: int) -> None:
    assert sorted(seen) == list(range(epochs))
    for indices in seen.values():
        assert sorted(indices) == list(range(SAMPLES))


class Collecting(Logger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "collecting"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.workers
def test_the_fit_trains_each_sample_once_an_epoch_on_a_loader_of_ours() -> None:
    tuner = DataLoaderTuner()
    module = Recording(plain)
    logger = Collecting()
    fit = trainer([tuner], logger=logger)
    fit.fit(module)
    _assert_each_sample_once(module.seen, 3)
    assert fit.num_training_batches == BATCHES
    loader = tuner.train_loaders[0]
    assert isinstance(loader, loadertune.DataLoader)
    assert len(loader.stages) == 3
    assert tuner.result is not None and tuner.result.tuning is not None
    assert tuner.result.tuning["settled"]  # the first epoch's trying concluded
    picked = {name for metrics, _ in logger.metrics for name in metrics}
    assert {"loadertune/num_workers", "loadertune/persistent_workers"} <= picked
    assert "dataloader" not in vars(fit.fit_loop._data_source)  # the source is Lightning's again


@pytest.mark.workers
def test_without_shuffle_each_epoch_keeps_the_samplers_order() -> None:
    module = Recording(lambda stage: plain(stage, shuffle=False))
    trainer([DataLoaderTuner()], max_epochs=2).fit(module)
    assert module.seen == {0: list(range(SAMPLES)), 1: list(range(SAMPLES))}


@pytest.mark.workers
def test_reloaded_loaders_are_rebuilt_too() -> None:
    tuner = DataLoaderTuner()
    module = Recording(plain)
    trainer([tuner], reload_dataloaders_every_n_epochs=1).fit(module)
    _assert_each_sample_once(module.seen, 3)
    assert module.requests == 3
    assert isinstance(tuner.train_loaders[0], loadertune.DataLoader)
    assert len(tuner.train_loaders) == 1  # the last one made


@pytest.mark.workers
def test_an_epoch_cut_by_limit_train_batches_trains_only_its_batches() -> None:
    module = Recording(plain)
    tuner = DataLoaderTuner()
    trainer([tuner], limit_train_batches=5).fit(module)
    for indices in module.seen.values():
        assert len(indices) == 5 * 8 and len(set(indices)) == len(indices)
    assert tuner.result is not None and tuner.result.tuning is not None
    assert tuner.result.tuning["settled"]  # the cut epochs were told as the epochs they were


def test_the_fits_length_comes_from_max_epochs_or_max_steps() -> None:
    from types import SimpleNamespace

    from loadertune.lightning import fit_epochs

    def fit(epochs: int, steps: int, accumulate: int = 1) -> SimpleNamespace:
        return SimpleNamespace(
            max_epochs=epochs, max_steps=steps, accumulate_grad_batches=accumulate
        )

    loader = plain("train")  # 24 batches
    assert fit_epochs(fit(10, -1), loader) == 10
    assert fit_epochs(fit(-1, 100), loader) == 5
    assert fit_epochs(fit(10, 30), loader) == 2
    assert fit_epochs(fit(-1, 30, accumulate=4), loader) == 5
    assert fit_epochs(fit(-1, -1), loader) is None


@pytest.mark.workers
def test_max_steps_ending_the_fit_mid_epoch_leaves_no_worker() -> None:
    before = _children()
    tuner = DataLoaderTuner()
    trainer([tuner], max_epochs=-1, max_steps=BATCHES + 7).fit(Recording(plain))
    assert _children() - before <= _helpers()


@pytest.mark.workers
def test_a_loader_of_ours_from_the_module_is_used_as_it_is() -> None:
    ours = loadertune.DataLoader(
        Indexed(SAMPLES, cost_s=0.002), batch_size=8, shuffle=True, epochs=3
    )
    tuner = DataLoaderTuner()
    module = Recording(lambda stage: ours)
    trainer([tuner]).fit(module)
    assert tuner.train_loaders == [ours]
    _assert_each_sample_once(module.seen, 3)


def test_lightning_re_creating_a_loader_of_ours_keeps_its_knobs_tuned() -> None:
    from lightning.pytorch.utilities.data import _update_dataloader

    dataset = Indexed(SAMPLES, cost_s=0.002)
    tuned = loadertune.DataLoader(dataset, batch_size=8, shuffle=True, epochs=4)
    given = loadertune.DataLoader(dataset, batch_size=8, num_workers=2, persistent_workers=True)
    for loader in (tuned, given):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=0)
        again = _update_dataloader(loader, sampler)
        assert isinstance(again, loadertune.DataLoader)
        assert again.sampler is sampler and len(again) == BATCHES // 2
        assert again.knobs == loader.knobs
        assert again.epochs == loader.epochs
    assert tuned.num_workers == 0  # torch's value, as torch's own iterators read it
    assert vars(tuned)["num_workers"] is None  # what was passed, as re-creating reads it


def test_the_rebuilt_loader_keeps_the_batching_and_arguments() -> None:
    from loadertune.online.adopt import from_loader

    generator = torch.Generator().manual_seed(3)
    original = TorchDataLoader(
        Indexed(SAMPLES),
        batch_size=8,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        pin_memory=True,
        timeout=30,
        generator=generator,
    )
    ours = from_loader(original, keep=("pin_memory",), epochs=3)
    assert ours.sampler is original.sampler and ours.generator is generator
    assert (ours.batch_size, ours.drop_last, ours.timeout) == (8, True, 30)
    assert ours.collate_fn is original.collate_fn
    assert ours.knobs.num_workers is None and ours.knobs.pin_memory is True
    by_batches = TorchDataLoader(Indexed(SAMPLES), batch_sampler=original.batch_sampler)
    assert from_loader(by_batches).batch_sampler is original.batch_sampler
    with pytest.raises(ValueError, match="keep names knobs"):
        from_loader(original, keep=("batch_size",))


@pytest.mark.workers
def test_validation_is_left_alone_unless_asked() -> None:
    def loaders(stage: str) -> Any:
        return plain(stage)

    for tune_val in (False, True):
        module = Recording(loaders)
        module.val_dataloader = lambda: plain("val")  # type: ignore[method-assign]
        tuner = DataLoaderTuner(tune_val=tune_val)
        fit = trainer([tuner], max_epochs=2, num_sanity_val_steps=2)
        fit.fit(module)
        val = fit.val_dataloaders
        assert isinstance(val, loadertune.DataLoader) == tune_val
        assert len(tuner.val_loaders) == int(tune_val)
        for indices in module.val_seen.values():
            assert indices == list(range(SAMPLES))


def test_a_loader_subclass_is_left_alone_with_a_warning() -> None:
    class Mine(TorchDataLoader):  # type: ignore[type-arg]
        pass

    module = Recording(lambda stage: Mine(Indexed(SAMPLES), batch_size=8))
    tuner = DataLoaderTuner()
    with pytest.warns(LoadertuneWarning, match="left Mine alone"):
        trainer([tuner], max_epochs=1).fit(module)
    assert tuner.train_loaders == []
    _assert_each_sample_once(module.seen, 1)


@pytest.mark.workers
def test_the_users_dataset_error_reaches_the_user_and_no_worker_is_left() -> None:
    before = _children()
    module = Recording(lambda stage: TorchDataLoader(Indexed(SAMPLES, bad=37), batch_size=8))
    fit = trainer([DataLoaderTuner()])
    with pytest.raises(ValueError, match="corrupt record 37"):
        fit.fit(module)
    assert _children() - before <= _helpers()
    assert "dataloader" not in vars(fit.fit_loop._data_source)


def test_bad_tune_epochs_is_refused() -> None:
    with pytest.raises(ValueError, match="tune_epochs"):
        DataLoaderTuner(tune_epochs=0)


def test_without_lightning_the_import_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "loadertune.lightning")
    with pytest.raises(ImportError, match=r"pip install 'loadertune\[lightning\]'"):
        importlib.import_module("loadertune.lightning")


@pytest.mark.ranks
def test_under_ddp_every_rank_trains_its_share_once_on_the_same_configs(tmp_path: Path) -> None:
    job = str(Path(__file__).with_name("lightning_job.py"))
    done = subprocess.run(
        [sys.executable, job, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        env=_env(tmp_path),
        check=False,
        cwd=tmp_path,
    )
    _assert_none_left(job)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in range(3):
        shares = [rank["seen"][str(epoch)] for rank in ranks]
        assert sorted(shares[0] + shares[1]) == list(range(SAMPLES))
    assert {rank["sampler"] for rank in ranks} == {"DistributedSampler"}
    assert ranks[0]["batches"] == BATCHES // 2
    assert ranks[0]["stages"] == ranks[1]["stages"]  # the same configs, switched alike
    assert ranks[0]["running"] == ranks[1]["running"] is not None
