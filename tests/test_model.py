"""The worker-count model (tuning/model.py) and how the adaptive search follows it."""

from __future__ import annotations

import pytest

from fakes import Measured, summaries, timed
from loadertune import LoaderConfig as C
from loadertune.records.result import Summary
from loadertune.tuning.adaptive import Adaptive
from loadertune.tuning.history import History
from loadertune.tuning.model import LoaderFit, fit, suggest_workers


def _fit(make: float, busy: float, cpu: float, per_worker: float, batches: int) -> LoaderFit:
    return LoaderFit(2, make, busy, cpu, per_worker, batches)


def test_storage_bound_data_is_sent_far_above_the_cores_until_startup_balances() -> None:
    # 32 samples x 4 ms of waiting per batch, little CPU, 30 ms to start each worker
    model = _fit(make=0.133, busy=0.0, cpu=0.01, per_worker=0.03, batches=100)
    assert model.saturating_workers(cpus=2) == pytest.approx(26.6)
    assert model.suggested_workers(cpus=2) == 21  # sqrt(100 x 0.133 / 0.03)
    longer = _fit(make=0.133, busy=0.0, cpu=0.01, per_worker=0.03, batches=10_000)
    assert longer.suggested_workers(cpus=2) == 27  # then the CPUs cap it


def test_cpu_bound_data_stays_at_the_core_count() -> None:
    model = _fit(make=0.032, busy=0.0, cpu=0.033, per_worker=0.01, batches=200)
    assert model.suggested_workers(cpus=2) == 2


def test_a_step_slower_than_loading_needs_one_worker() -> None:
    model = _fit(make=0.013, busy=0.1, cpu=0.11, per_worker=0.01, batches=200)
    assert model.suggested_workers(cpus=8) == 1


def test_a_trial_with_stamps_gives_its_figures() -> None:
    # each batch waits 10 ms then steps 10 ms; made in 0.5 ms; 50 ms to the first batch
    summary = summaries(timed(2, 0.01, 0.01, startup_s=0.05))[0]
    model = fit(summary)
    assert model is not None
    assert model.busy_s == pytest.approx(0.01, abs=1e-4)
    assert model.make_s == pytest.approx(0.0005, abs=1e-4)
    assert model.per_worker_s == pytest.approx((0.05 - 0.0005) / 2, abs=1e-4)
    assert model.batches == 20


def test_no_fit_without_workers_or_stamps() -> None:
    assert fit(summaries(timed(0, 0.01, 0.01))[0]) is None
    assert suggest_workers(summaries(Measured(C(2), 1.0))[0], cpus=2) is None


def _propose_after(model_says: int | None, cpu_busy: float = 0.3) -> C | None:
    def model(summary: Summary, cpus: int) -> int | None:
        return model_says

    strategy = Adaptive(usable_cpus=2, max_workers=64, model=model)
    trials = [Measured(C(0), 8.0, 0.99, batches=1000)]
    trials.append(Measured(C(2), 4.0, 0.99, cpu_busy=cpu_busy, batches=1000))
    return strategy.propose(History(summaries(*trials)))


def test_the_search_jumps_where_the_model_points() -> None:
    assert _propose_after(21) == C(21)


def test_when_the_model_says_enough_the_search_looks_just_above() -> None:
    assert _propose_after(2) == C(3)


def test_without_a_model_the_search_climbs_by_a_factor() -> None:
    assert _propose_after(None, cpu_busy=0.3) == C(8)  # CPUs idle: four times
    assert _propose_after(None, cpu_busy=1.9) == C(4)  # saturated: twice
