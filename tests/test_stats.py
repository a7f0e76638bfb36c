from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadertune.records import stats
from loadertune.records.stats import BatchTimes
from simloader import SimLoader


def _estimate(sim: SimLoader, stop_after: int) -> float:
    times, _ = SimLoader(**_params(sim)).run(stop_after)
    rate = stats.steady_rate(times, sim.workers * sim.prefetch_factor or 1)
    epoch = stats.estimate_epoch_s(times.step_end_s[-1], len(times), sim.batches, rate, 0.0)
    assert epoch is not None
    return epoch


def _params(sim: SimLoader) -> dict[str, float | int]:
    keys = ("workers", "cores", "batch_cpu_s", "step_s", "batches", "prefetch_factor")
    return {k: getattr(sim, k) for k in keys}


def _naive_window_rate(times: BatchTimes, warmup: int, window: int) -> float:
    """What a loader benchmark does: time ``window`` batches after ``warmup``."""
    return window / (times.ready_s[warmup + window - 1] - times.ready_s[warmup - 1])


def test_prefetch_stock_does_not_fool_the_estimate() -> None:
    """32 workers on 2 cores: bursts of 32 batches. A short window after a short warm-up drains
    the stock and looks many times faster; the stock-corrected estimate matches the epoch."""
    sim = SimLoader(workers=32, cores=2, batch_cpu_s=0.004, step_s=0.0, batches=1200)
    full, epoch_s = SimLoader(**_params(sim)).run()
    naive_s = sim.batches / _naive_window_rate(full, warmup=8, window=40)
    assert abs(naive_s / epoch_s - 1) > 0.5  # the trap is real in this simulation
    assert _estimate(sim, stop_after=7 * 64 + 16) == pytest.approx(epoch_s, rel=0.05)


@pytest.mark.parametrize(
    ("workers", "cores", "batch_cpu_s", "step_s"),
    [
        (0, 1, 0.002, 0.001),  # no workers: main process does both
        (2, 2, 0.004, 0.001),  # input-bound, few workers
        (8, 2, 0.004, 0.0),  # oversubscribed
        (4, 2, 0.001, 0.004),  # compute-bound: the step is the bottleneck
    ],
)
def test_estimate_agrees_with_the_simulated_epoch(
    workers: int, cores: float, batch_cpu_s: float, step_s: float
) -> None:
    sim = SimLoader(max(workers, 1), cores, batch_cpu_s, step_s, batches=1000)
    _, epoch_s = SimLoader(**_params(sim)).run()
    assert _estimate(sim, stop_after=400) == pytest.approx(epoch_s, rel=0.05)


@given(
    rate=st.floats(min_value=1.0, max_value=1e5),
    n=st.integers(min_value=20, max_value=500),
)
def test_production_slope_of_a_steady_stream_is_its_rate(rate: float, n: int) -> None:
    done = [i / rate for i in range(n)]
    slope = stats.production_slope(done, done[2], done[-3])
    assert slope == pytest.approx(rate, rel=0.05)


def test_production_slope_needs_enough_batches() -> None:
    assert stats.production_slope([0.1, 0.2], 0.0, 1.0) is None
    assert stats.production_slope([0.1] * 20, 1.0, 1.0) is None


def test_consumption_rate_uses_the_second_half() -> None:
    ready = [0.5, 0.6, 0.7, 0.8, 0.9]
    times = BatchTimes(ready, ready, ready, ready, [1] * 5)
    rate = stats.consumption_rate(times)
    assert rate is not None
    assert rate.batches_per_s == pytest.approx(10.0)
    assert rate.method == "consumption"


def test_data_wait_fraction() -> None:
    times = BatchTimes([0.0, 1.0], [0.5, 1.25], [1.0, 2.0], [0.4, 1.2], [4, 4])
    assert stats.data_wait_fraction(times) == pytest.approx(0.75 / 2.0)
    assert stats.data_wait_fraction(times, first_batch=1) == pytest.approx(0.25)


def test_estimate_adds_the_rest_at_the_steady_rate() -> None:
    rate = stats.SteadyRate(10.0, 0.0, 1.0, 0, "production")
    assert stats.estimate_epoch_s(2.0, 20, 120, rate, 0.5) == pytest.approx(12.5)
    assert stats.estimate_epoch_s(2.0, 20, 120, None, 0.5) is None


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=50))
def test_spread_brackets_the_median(values: list[float]) -> None:
    spread = stats.spread(values)
    assert spread is not None
    assert spread.low <= spread.median <= spread.high
    assert spread.rel >= 0
    assert stats.spread([]) is None


def test_relative_iqr_spans_the_middle_half_so_one_outlier_barely_moves_it() -> None:
    from loadertune.records.stats import relative_iqr

    assert relative_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0 / 3.0)
    assert relative_iqr([1.0, 1.0, 1.0, 1.0, 9.0]) == 0.0
    assert relative_iqr([2.0, 4.0]) == pytest.approx(1.0 / 3.0)  # half the range, over 3
    assert relative_iqr([5.0]) == 0.0 and relative_iqr([]) == 0.0
