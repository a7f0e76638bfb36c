"""Every figure a pick rests on is for the same work, warm: a stream's real length, a warm-up
before the clock, and a baseline measured more than once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from fakes import Measured
from loadertune import LoaderConfig, TrialLimits, Workload, bench, tune
from loadertune.analysis.document import document
from loadertune.analysis.explanation import baseline_sentence
from loadertune.engine import trials as bench_module
from loadertune.engine.bench import new_result
from loadertune.engine.trials import TrialRunner
from loadertune.records.trial import Trial
from loadertune.report.table import epoch_word, title
from loadertune.report.verdict import warning_lines
from sample_data import Rows


class Slow(IterableDataset[torch.Tensor]):
    """A stream without length of 40 batches of 4 that takes 1 ms a sample."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(160):
            time.sleep(0.001)
            yield torch.full((2,), float(i))


CUT = TrialLimits(budget_s=0.001, timeout_s=20.0)  # cut as soon as the rate can be estimated
WHOLE = TrialLimits(budget_s=30.0, timeout_s=20.0)


def test_a_trial_cut_before_the_stream_ended_is_estimated_for_the_stream_not_the_budget() -> None:
    workload = Workload(Slow(), batch_size=4, batch_budget=200)
    result = new_result(workload, {}, None)
    runner = TrialRunner(result, workload, WHOLE, None, None)
    cut = runner.one(LoaderConfig(0), 0, (0, 2), CUT)
    assert cut.ok and not cut.complete and cut.batches < 40
    whole = runner.one(LoaderConfig(0), 1, (1, 2))
    assert whole.complete and whole.batches == 40
    assert cut.epoch_batches == 40  # re-estimated for the stream's 40 batches, not 200
    assert cut.epoch_s is not None and whole.epoch_s is not None
    assert cut.epoch_s < 2 * whole.epoch_s  # 200 batches would be five times the stream
    assert result.workload["stream_batches"] == 40 and runner.stream_batches == 40
    assert epoch_word(result) == "epoch"
    assert title(result).endswith("40 batches per epoch (the stream's length)")
    assert whole.warnings == []  # said once, for every row, not on the rows that ended
    (note,) = warning_lines(result)
    assert note.startswith("Note: the stream ended after 40 batches") and "every config" in note


def test_once_the_stream_length_is_known_every_trial_runs_to_it() -> None:
    workload = Workload(Slow(), batch_size=4, batch_budget=200)
    result = bench(workload, [LoaderConfig(0)], repeats=2, diagnose=False)
    assert [t.batches for t in result.trials] == [40, 40]
    assert result.settings["warm_up"]["batches"] == 40  # the warm-up ran it whole and learned it
    assert all(t.epoch_batches == 40 for t in result.trials)


class FakeRuns:
    """Stands in for run_trial: the given epoch times per worker count; the first ``cold``
    runs at w=0 are cold (slow); knob variants are 10% slower than their count."""

    def __init__(self, cold: int) -> None:
        self.calls: list[LoaderConfig] = []
        self.cold = cold

    def __call__(self, workload: Workload, config: LoaderConfig, limits: Any, **kw: Any) -> Trial:
        self.calls.append(config)
        w = config.num_workers
        zeros = sum(1 for c in self.calls if c.num_workers == 0)
        epoch = {0: 1.15 if zeros <= self.cold else 0.55, 1: 0.95, 2: 0.9}.get(w, 1.0)
        epoch *= 1.0 if config == LoaderConfig(w) else 1.1
        return Measured(config, epoch, 0.5, cpu_busy=1.9, repeat=kw.get("repeat", 0))


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    runs = FakeRuns(cold=2)  # the warm-up and the first timed trial of w=0 are both cold
    monkeypatch.setattr(bench_module, "run_trial", runs)
    monkeypatch.setattr(bench_module, "run_diagnosis", lambda *a, **k: {})
    return runs


def test_the_first_config_warms_up_uncounted_and_a_cold_baseline_is_measured_again(
    fake_runs: FakeRuns,
) -> None:
    result = tune(Workload(Rows(64), batch_size=8), budget_s=30.0)
    assert fake_runs.calls[0] == LoaderConfig(0)  # the warm-up: the baseline, first
    assert len(result.trials) == len(fake_runs.calls) - 1  # ... kept out of the trials
    assert result.settings["warm_up"]["config"]["num_workers"] == 0
    baseline = next(s for s in result.summaries() if s.config == LoaderConfig(0))
    assert len(baseline.ok_trials) >= 2  # 28% slower than w=2 when cold, measured again
    assert result.best is not None and result.best.config == LoaderConfig(0)
    assert result.tuning is not None
    assert result.tuning["speedups"]["baseline"]["speedup"] == 1.0


def test_a_config_measured_once_is_marked_in_the_table_and_the_json(fake_runs: FakeRuns) -> None:
    from rich.console import Console

    from loadertune.report.table import caption, results_table

    result = tune(Workload(Rows(64), batch_size=8), budget_s=30.0)
    once = [s for s in result.summaries() if s.measured_once]
    assert once and any(not s.measured_once for s in result.summaries())
    doc = document(result)
    assert {s["label"] for s in doc["summary"] if s["measured_once"]} == {
        s.config.label() for s in once
    }
    console = Console(width=140, record=True, file=None)
    console.print(results_table(result))
    rows = console.export_text().splitlines()
    row = next(r for r in rows if r.strip().startswith(once[0].config.label() + " "))
    assert " x1" in row
    assert "x1 measured once" in caption(result)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_the_verdict_names_a_baseline_that_ran_faster_than_the_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    times = {4: 0.98, 2: 1.0}  # the user's w=4 is 2% faster: within the noise, w=2 is cheaper

    def runs(workload: Workload, config: LoaderConfig, limits: Any, **kw: Any) -> Trial:
        epoch = times.get(config.num_workers, 2.0) * (1 if config.in_order else 1.5)
        return Measured(config, epoch, 0.01, cpu_busy=1.9, repeat=kw.get("repeat", 0))

    monkeypatch.setattr(bench_module, "run_trial", runs)
    monkeypatch.setattr(bench_module, "run_diagnosis", lambda *a, **k: {})
    loader = DataLoader(Rows(64), batch_size=8, num_workers=4)
    result = tune(Workload(loader), budget_s=30.0, max_workers=4)
    assert result.best is not None and result.best.config == LoaderConfig(2)
    sentence = baseline_sentence(result, result.best)  # the verdict's, on raw-less trials
    assert sentence is not None
    assert "Your baseline, w=4, ran 1.02x as fast as the pick" in sentence
    assert "within the noise" in sentence


def test_a_start_cut_by_the_budget_is_not_called_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadertune.records.trial import FAILED, TrialError

    def runs(workload: Workload, config: LoaderConfig, limits: Any, **kw: Any) -> Trial:
        if config.multiprocessing_context == "forkserver":
            error = TrialError("timeout", f"timed out: no batch for {limits.timeout_s} s")
            return Trial(config, status=FAILED, error=error)
        return Measured(config, 1.0 / (1 + config.num_workers), 0.5, cpu_busy=1.9)

    monkeypatch.setattr(bench_module, "run_trial", runs)
    monkeypatch.setattr(bench_module, "run_diagnosis", lambda *a, **k: {})
    result = tune(Workload(Rows(64), batch_size=8), budget_s=30.0, max_workers=4)
    (failed,) = result.failed_trials
    assert failed.error is not None
    assert str(failed.error).startswith("stopped: no batch within the ")
    assert "s left of the budget (slow to start, not a hang" in str(failed.error)


def _slow_runs(seconds: float) -> Any:
    def runs(workload: Workload, config: LoaderConfig, limits: Any, **kw: Any) -> Trial:
        time.sleep(seconds)  # the budget's clock is real: trials must take time
        return Measured(config, 1.0, 0.9, cpu_busy=0.2, repeat=kw.get("repeat", 0))

    return runs


def test_a_budget_that_fits_one_config_makes_no_pick_and_says_what_budget_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_module, "run_trial", _slow_runs(1.0))
    result = tune(Workload(Rows(64), batch_size=8), budget_s=3.0)
    assert [t.config for t in result.trials] == [LoaderConfig(0)]
    assert result.best is None and result.tuning is not None
    reason = result.tuning["reason"]
    assert reason.startswith("the budget (3 s) fit only w=0, with nothing to compare it to")
    assert "the next trial (w=2) needs about 1 s more, so give --budget " in reason


def test_a_budget_that_fits_no_trial_says_so_not_that_trials_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench_module, "run_trial", _slow_runs(1.0))
    result = tune(Workload(Rows(64), batch_size=8), budget_s=1.0)
    assert result.trials == [] and result.best is None and result.tuning is not None
    assert result.tuning["reason"].startswith("the budget (1 s) ran out before the first trial")
