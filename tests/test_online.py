"""``loadertune.DataLoader``: knobs given are kept, the search runs on the real loop, every
epoch is delivered exactly once, the pick is remembered, the user's exceptions reach the user."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch
from torch.utils.data import IterableDataset

import loadertune
from loadertune.analysis.document import document
from loadertune.online.cache import CACHE_ENV
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial
from sample_data import Indexed


class Counting(IterableDataset[int]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        info = torch.utils.data.get_worker_info()
        start, step = (info.id, info.num_workers) if info else (0, 1)
        return iter(range(start, self.n, step))


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _epoch(loader: loadertune.DataLoader) -> list[int]:
    return [i for indices, _ in loader for i in indices.tolist()]


def _children() -> set[int]:
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.Error:
            continue
    return alive


def test_every_knob_given_is_torchs_own_loader() -> None:
    loader = loadertune.DataLoader(Indexed(16), batch_size=4, num_workers=0)
    iterator = iter(loader)
    assert type(iterator).__name__ == "_SingleProcessDataLoaderIter"
    assert loader.tuning is None


def test_bad_auto_values_are_refused() -> None:
    with pytest.raises(ValueError, match="in_order"):
        loadertune.DataLoader(Indexed(16), in_order="sometimes")
    with pytest.raises(ValueError, match="epochs"):
        loadertune.DataLoader(Indexed(16), epochs=0)


def test_in_memory_rows_never_start_workers() -> None:
    loader = loadertune.DataLoader(Indexed(2000), batch_size=16, shuffle=True, epochs=3)
    for _ in range(3):
        assert sorted(_epoch(loader)) == list(range(2000))
    assert {t.config.num_workers for epoch in loader.stages for t in epoch} == {0}
    result = loader.tuning
    assert result is not None and result.best is not None
    assert result.best.loader_kwargs["num_workers"] == 0


class ColdStart(Indexed):
    """In-memory rows whose first ``cold`` reads wait ``wait_s`` each (a page cache filling)."""

    def __init__(self, n: int, cold: int, wait_s: float) -> None:
        super().__init__(n)
        self.cold, self.wait_s = cold, wait_s

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        if self.cold:
            self.cold -= 1  # forked workers inherit the count
            time.sleep(self.wait_s)
        return super().__getitem__(index)


@pytest.mark.workers
def test_a_cold_first_batch_does_not_leave_in_memory_rows_on_workers() -> None:
    loader = loadertune.DataLoader(ColdStart(4000, cold=16, wait_s=0.03), batch_size=8, epochs=3)
    try:
        for _ in range(3):
            assert _epoch(loader) == list(range(4000))
        tried = [t.config.num_workers for epoch in loader.stages for t in epoch]
        assert tried[0] == 0 and max(tried) > 2  # jumped after the cold batch ...
        result = loader.tuning
        assert result is not None and result.best is not None
        assert result.best.loader_kwargs["num_workers"] == 0  # ... and came back
    finally:
        loader.close()


def test_a_settled_pick_without_workers_runs_torchs_own_epochs() -> None:
    from loadertune.online.plain import PlainEpoch

    def epochs(loader: torch.utils.data.DataLoader) -> list[list[int]]:  # type: ignore[type-arg]
        return [[i for indices, _ in loader for i in indices.tolist()] for _ in range(3)]

    torch.manual_seed(5)  # the sampler draws from torch's global generator: the same draws
    expected = epochs(torch.utils.data.DataLoader(Indexed(3000), batch_size=16, shuffle=True))
    torch.manual_seed(5)
    loader = loadertune.DataLoader(Indexed(3000), batch_size=16, shuffle=True, epochs=3)
    assert epochs(loader) == expected
    assert [t.batches for t in loader.stages[-1]] == [len(loader)]  # still measured whole
    result = loader.tuning
    assert result is not None and result.best is not None
    assert isinstance(iter(loader), PlainEpoch)  # settled on w=0 in the first epoch


def test_the_users_exception_reaches_the_user_once_settled_without_workers() -> None:
    dataset = Indexed(3000)
    loader = loadertune.DataLoader(dataset, batch_size=16, epochs=3)
    _epoch(loader)
    dataset.bad = 37
    with pytest.raises(ValueError, match="corrupt record 37"):
        _epoch(loader)
    dataset.bad = None
    assert _epoch(loader) == list(range(3000))  # and the loader goes on, as torch's does


@pytest.mark.workers
def test_storage_reads_climb_to_many_workers_and_keep_every_sample_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="loadertune")
    loader = loadertune.DataLoader(Indexed(384, cost_s=0.002), batch_size=8, shuffle=True, epochs=3)
    try:
        for _ in range(3):
            assert sorted(_epoch(loader)) == list(range(384))
    finally:
        loader.close()
    workers = [t.config.num_workers for epoch in loader.stages for t in epoch]
    assert workers[0] == 0 and max(workers) >= 4
    assert any("settled on" in record.message for record in caplog.records)


@pytest.mark.workers
def test_unshuffled_epochs_stay_in_order_across_switches() -> None:
    loader = loadertune.DataLoader(Indexed(384, cost_s=0.002), batch_size=8, epochs=2)
    try:
        for _ in range(2):
            assert _epoch(loader) == list(range(384))
    finally:
        loader.close()
    assert len(loader.stages[0]) >= 2  # it did switch inside the first epoch


@pytest.mark.workers
def test_a_given_knob_is_kept_while_the_rest_is_tuned() -> None:
    loader = loadertune.DataLoader(Indexed(96, cost_s=0.002), batch_size=8, num_workers=2, epochs=2)
    try:
        for _ in range(2):
            _epoch(loader)
    finally:
        loader.close()
    assert {t.config.num_workers for epoch in loader.stages for t in epoch} == {2}


@pytest.mark.workers
def test_the_pick_is_remembered_and_the_next_job_starts_there(cache_dir: Path) -> None:
    def job() -> loadertune.DataLoader:
        loader = loadertune.DataLoader(Indexed(160, cost_s=0.002), batch_size=8, epochs=2)
        try:
            for _ in range(2):
                _epoch(loader)
        finally:
            loader.close()
        return loader

    first = job()
    [saved] = list(cache_dir.glob("*.json"))
    picked = LoaderConfig.from_kwargs(json.loads(saved.read_text())["config"])
    second = job()
    assert second.stages[0][0].config == picked
    assert first.tuning is not None and second.tuning is not None


def test_a_remembered_pick_without_workers_is_verified_on_torchs_own_first_epoch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from loadertune.online.plain import PlainEpoch

    def job() -> loadertune.DataLoader:
        loader = loadertune.DataLoader(Indexed(3000), batch_size=16, shuffle=True, epochs=2)
        for _ in range(2):
            assert sorted(_epoch(loader)) == list(range(3000))
        return loader

    job()
    loader = loadertune.DataLoader(Indexed(3000), batch_size=16, shuffle=True, epochs=2)
    assert isinstance(iter(loader), PlainEpoch)  # from its first batch on
    with caplog.at_level(logging.INFO, logger="loadertune"):
        second = job()
    assert [len(epoch) for epoch in second.stages] == [1, 1]
    assert second.controller.settled is not None  # type: ignore[attr-defined]
    assert any("settled on w=0" in r.message for r in caplog.records)


def test_without_cache_nothing_is_written(cache_dir: Path) -> None:
    loader = loadertune.DataLoader(Indexed(200), batch_size=8, epochs=2, cache=False)
    for _ in range(2):
        _epoch(loader)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


def test_what_it_did_is_a_result_document() -> None:
    loader = loadertune.DataLoader(Indexed(400), batch_size=8, epochs=2)
    for _ in range(2):
        _epoch(loader)
    result = loader.tuning
    assert result is not None
    doc = json.loads(json.dumps(document(result), allow_nan=False))
    assert doc["tuning"]["strategy"] == "online" and doc["tuning"]["settled"]
    again = loadertune.Result.from_dict(doc)
    assert again.best is not None and again.best.config == LoaderConfig(0)


class Naive(IterableDataset[int]):
    """Yields 0..n-1 in every process that iterates it: correct without workers only."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))


def test_an_iterable_dataset_keeps_torchs_worker_count_unless_auto() -> None:
    loader = loadertune.DataLoader(Naive(300), batch_size=10, epochs=3)
    assert type(iter(loader)).__name__ == "_SingleProcessDataLoaderIter"  # torch's own
    for _ in range(3):
        assert sorted(x for batch in loader for x in batch.tolist()) == list(range(300))
    with pytest.raises(ValueError, match="num_workers"):
        loadertune.DataLoader(Naive(3), num_workers="many")


def test_an_iterable_dataset_switches_only_between_epochs() -> None:
    loader = loadertune.DataLoader(Counting(300), batch_size=10, epochs=3, num_workers="auto")
    try:
        for _ in range(3):
            assert sorted(x for batch in loader for x in batch.tolist()) == list(range(300))
    finally:
        loader.close()
    assert all(len(epoch) == 1 for epoch in loader.stages)


@pytest.mark.workers
@pytest.mark.parametrize("workers", [0, 2])
def test_the_users_exception_reaches_the_user(workers: int) -> None:
    before = _children()
    loader = loadertune.DataLoader(
        Indexed(64, bad=37),
        batch_size=1,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
    )
    with pytest.raises(ValueError, match="corrupt record 37"):
        _epoch(loader)
    loader.close()
    assert _children() - before <= _helpers()


@pytest.mark.workers
def test_no_worker_outlives_a_loop_that_breaks_and_a_loader_collected() -> None:
    before = _children()
    loader = loadertune.DataLoader(Indexed(200, cost_s=0.002), batch_size=8, epochs=3)
    for index, _ in enumerate(loader):
        if index == 15:
            break
    del loader, index
    gc.collect()
    deadline = time.monotonic() + 10  # liveness bound only: workers exit as they are joined
    while _children() - before - _helpers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _children() - before <= _helpers()


def _helpers() -> set[int]:
    from loadertune.engine.harness import _multiprocessing_helpers

    return _multiprocessing_helpers()


def test_a_saved_online_result_is_shown(tmp_path: Path) -> None:
    from cli_run import run_cli

    loader = loadertune.DataLoader(Indexed(400), batch_size=8, epochs=2)
    for _ in range(2):
        _epoch(loader)
    path = tmp_path / "online.json"
    loader.save_tuning(path)
    shown = run_cli("show", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "w=0" in shown.stdout and "Pick" in shown.stdout
    assert "Search: online, inside the training job" in shown.stdout  # no budget to report


def _stretch(config: LoaderConfig, per_batch_s: float, batches: int = 12) -> Trial:
    """A stretch whose batches arrive every ``per_batch_s``, the step taking none of it."""
    ready = [per_batch_s * (k + 1) for k in range(batches)]
    return Trial(
        config,
        epoch_batches=batches,
        request_s=[r - per_batch_s for r in ready],
        ready_s=ready,
        step_end_s=list(ready),
        done_s=list(ready),
        worker_id=[-1] * batches,
        n_samples=[8] * batches,
        complete=True,
        end_s=ready[-1],
    )


def test_a_rate_that_drifts_after_settling_reopens_the_search() -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space({"num_workers": 0}), batches=12, epochs=10, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    search.first(0)
    search.epoch_ended(_stretch(LoaderConfig(0), 0.01))
    assert search.settled is not None  # the only config the user's knobs allow
    search.epoch_ended(_stretch(LoaderConfig(0), 0.0105))  # within the noise: stays
    assert search.settled is not None
    search.epoch_ended(_stretch(LoaderConfig(0), 0.03))  # 3x slower per batch
    assert search.settled is not None and len(search.trials) == 2  # looked again, settled again


def test_a_loop_that_waits_less_than_receiving_a_batch_costs_never_explores() -> None:
    from loadertune.online.search import MIN_WORKER_BATCH_S, Autotune, Space

    search = Autotune(Space(), batches=100, epochs=10, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    search.first(0)
    search.epoch_ended(_stretch(LoaderConfig(0), MIN_WORKER_BATCH_S / 2, batches=100))
    assert search.settled is not None and search.running == LoaderConfig(0)


def _timed(config: LoaderConfig, per_batch_s: float, batches: int = 40) -> Trial:
    """A stretch with the CPU clock read at its start (0; the search reads it again at the
    stretch's end: its ``cpu_now``)."""
    trial = _stretch(config, per_batch_s, batches)
    trial.cpu = [(0.0, 0.0)]
    return trial


def test_workers_that_keep_every_cpu_busy_are_not_outrun_by_more_workers() -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space(), batches=1000, epochs=10, usable_cpus=2)
    search.cpu_now = lambda: 40 * 0.064
    search.first(0)
    search.epoch_ended(_timed(LoaderConfig(0), 0.064))  # pure Python, 64 ms a batch
    assert search.running is not None and search.running.num_workers == 2  # one per CPU
    search.epoch_ended(_timed(search.running, 0.032))  # both CPUs busy, still waiting
    assert search.settled is not None and search.settled.chosen.config.num_workers == 2
    assert len(search.trials) == 2  # nothing else tried: no config can beat the CPUs


def test_a_baseline_of_slow_batches_is_judged_after_two_of_them() -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space(), batches=1000, epochs=3, usable_cpus=2)
    search.cpu_now = lambda: 0.0  # waiting on storage: no CPU
    first = search.first(0)
    assert search.after(_timed(first, 0.05, 1), 0, 999) is None  # one: cold, maybe
    moved = search.after(_timed(first, 0.05, 2), 1, 998)
    assert moved is not None and moved.num_workers > 2  # the jump, from two batches


def test_a_baseline_whose_first_batch_is_very_slow_jumps_after_it() -> None:
    from loadertune.online.search import Autotune, Space
    from loadertune.online.stretch import FIRST_BATCH_JUMP_S

    search = Autotune(Space(), batches=128, epochs=3, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    first = search.first(0)
    moved = search.after(_timed(first, 2 * FIRST_BATCH_JUMP_S, 1), 0, 127)
    assert moved is not None and moved.num_workers > 2


def _cut(trial: Trial, epoch_batches: int = 1000) -> Trial:
    """``trial`` as a stretch that ended before its epoch did."""
    trial.epoch_batches, trial.complete, trial.end_s = epoch_batches, False, None
    return trial


def _from_workers(config: LoaderConfig, make_s: float, batches: int = 200) -> Trial:
    """A stretch of ``config``'s workers, each making a batch in ``make_s``, in turn."""
    workers = config.num_workers
    trial = _cut(_timed(config, make_s / workers, batches))
    trial.worker_id = [k % workers for k in range(batches)]
    trial.handed_s = [0.0] * batches  # every index at hand: each waits only for its worker
    return trial


def test_a_cold_first_batch_without_workers_is_measured_again_after_the_jump() -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space(), batches=1000, epochs=3, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    first = search.first(0)
    jumped = search.after(_cut(_timed(first, 0.3, 1)), 0, 999)  # a cold first batch: 0.3 s
    assert jumped is not None and jumped.num_workers > 2
    again = search.after(_from_workers(jumped, 0.05, 400), 400, 599)  # one in 50 ms each
    assert again is not None and again.num_workers == 0  # the baseline again, a whole stretch
    assert [t.config.num_workers for t in search.trials] == [jumped.num_workers]
    assert search.after(_cut(_timed(again, 0.3, 1)), 401, 598) is None  # one batch: not enough


def test_a_jump_whose_workers_take_as_long_as_the_baseline_keeps_it() -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space(), batches=1000, epochs=3, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    first = search.first(0)
    jumped = search.after(_cut(_timed(first, 0.3, 1)), 0, 999)
    assert jumped is not None
    search.after(_from_workers(jumped, 0.3, 400), 400, 599)  # storage: 0.3 s a batch anywhere
    assert all(t.config.num_workers for t in search.trials[1:])
    assert search.running is not None and search.running.num_workers > 0


def test_datasets_of_one_class_and_length_but_other_samples_get_other_cache_keys() -> None:
    from loadertune.online.cache import workload_key
    from loadertune.online.report import workload_facts

    class Wide(Indexed):
        def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
            return index, torch.zeros(64)

    narrow = loadertune.DataLoader(Indexed(100), batch_size=8)
    wide = loadertune.DataLoader(Wide(100), batch_size=8)
    wide_facts = {**workload_facts(wide), "dataset_type": "Indexed"}
    assert workload_key(workload_facts(narrow)) != workload_key(wide_facts)


@pytest.mark.workers
def test_a_search_the_job_cut_short_is_remembered_as_a_start_not_a_verdict(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadertune.online import search as online_search
    from loadertune.online.search import Autotune

    # the job's end, not the share of it trying may take, is what stops this search (a slow
    # machine's worker starts could spend that share first: a verdict of its own)
    monkeypatch.setattr(online_search, "EXPLORE_SHARE", 100.0)

    def loader() -> loadertune.DataLoader:
        return loadertune.DataLoader(Indexed(384, cost_s=0.004), batch_size=8, epochs=1)

    first = loader()
    try:
        _epoch(first)  # one epoch: still climbing when the job ends
    finally:
        first.close()
    [saved] = list(cache_dir.glob("*.json"))
    assert json.loads(saved.read_text())["finished"] is False
    search = loader().controller
    assert isinstance(search, Autotune)
    assert search.start is not None and search.start.num_workers > 0  # it starts from there
    assert search.expected_batch_s is None  # ... and searches on instead of only verifying


@pytest.mark.parametrize(("fixed", "finished"), [({"num_workers": 0}, True), ({}, False)])
def test_a_job_too_short_to_try_more_leaves_the_search_unfinished_only_if_more_was_left(
    fixed: dict[str, object], finished: bool
) -> None:
    from loadertune.online.search import Autotune, Space

    search = Autotune(Space(fixed), batches=12, epochs=1, usable_cpus=2)
    search.cpu_now = lambda: 0.0
    search.first(0)
    search.epoch_ended(_stretch(LoaderConfig(0), 0.01))  # 0.12 s of waiting left to win
    assert search.settled is not None and search.finished is finished


def test_plain_epochs_a_loop_takes_whole_without_asking_past_count_complete(
    cache_dir: Path,
) -> None:
    """Settled without workers, each epoch is torch's own iterator; one that Lightning's islice
    took whole (never asking past its end) still counts complete."""
    import itertools

    loader = loadertune.DataLoader(Indexed(2000), batch_size=8, epochs=6)
    for _ in range(6):
        batches = list(itertools.islice(iter(loader), len(loader)))
        assert sum(len(indices) for indices, _ in batches) == 2000
    loader.end_epoch()
    assert loader.tuning is not None and loader.tuning.best is not None
    assert loader.tuning.best.config.num_workers == 0
    plain = [epoch[0] for epoch in loader.stages[1:] if len(epoch) == 1]
    assert plain and all(trial.complete for trial in plain)


@pytest.mark.workers
def test_the_search_never_starts_more_workers_than_an_epoch_has_batches(cache_dir: Path) -> None:
    loader = loadertune.DataLoader(Indexed(48, cost_s=0.004), batch_size=8, epochs=6)
    for _ in range(6):
        assert sorted(_epoch(loader)) == list(range(48))
    ran = {trial.config.num_workers for epoch in loader.stages for trial in epoch}
    assert max(ran) <= 6, ran


def test_a_pick_made_alone_is_not_the_cache_key_of_one_under_ranks(cache_dir: Path) -> None:
    from loadertune.online.cache import workload_key
    from loadertune.online.report import workload_facts

    alone = loadertune.DataLoader(Indexed(64), batch_size=8)
    ranked = loadertune.DataLoader(Indexed(64), batch_size=8)
    ranked._rank_facts = {"world_size": 4, "local": 4}  # as _agreed() sets it under ranks
    assert workload_key(workload_facts(alone)) != workload_key(workload_facts(ranked))
