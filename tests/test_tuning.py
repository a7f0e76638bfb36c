"""The search logic on synthetic measurements: no clock, no process."""

from __future__ import annotations

import pytest

from fakes import Measured, summaries, timed
from loadertune import LoaderConfig as C
from loadertune import Workload, tune
from loadertune.records.trial import Trial
from loadertune.tuning.adaptive import Adaptive, fewer_rounds, fewest_for_rounds
from loadertune.tuning.history import History
from loadertune.tuning.pick import noise_band, pick
from loadertune.tuning.strategy import Grid, worker_grid
from loadertune.tuning.tune import Budget
from sample_data import Rows, sum_step


def _history(*trials: Measured, rejected: dict[C, str] | None = None) -> History:
    return History(summaries(*trials), rejected or {})


def _search(
    strategy: Adaptive, measure: dict[int, tuple[float, float, float]], batches: int = 1000
) -> list[C]:
    """Run the strategy against a table of plain worker counts -> (epoch_s, wait, cpu_busy);
    knob variants measure like their plain count but 10% slower; ``batches`` an epoch.
    Returns the order tried."""
    trials: list[Measured] = []
    while (config := strategy.propose(_history(*trials))) is not None:
        epoch, wait, cpu = measure.get(config.num_workers, (99.0, 0.9, 2.0))
        slower = 1.0 if config == C(config.num_workers) else 1.1
        trials.append(Measured(config, epoch * slower, wait, cpu_busy=cpu, batches=batches))
        assert len(trials) < 40, "the search must end"
    return [t.config for t in trials]


def test_anchors_are_the_baseline_and_the_two_rules() -> None:
    strategy = Adaptive(usable_cpus=4, max_workers=32, baseline=C(6))
    assert strategy.anchors() == [C(6), C(0), C(4)]
    assert strategy.lightning() == C(3)


def test_io_bound_data_goes_far_above_the_core_count() -> None:
    # storage latency: every doubling helps until 16, CPUs stay mostly idle
    table = {n: (8.6 / max(n, 1) ** 0.8 if n <= 16 else 1.0, 0.9, 0.4) for n in range(65)}
    tried = _search(Adaptive(usable_cpus=2, max_workers=64), table)
    counts = [c.num_workers for c in tried if c == C(c.num_workers)]
    assert max(counts) >= 16  # it looked well above the 2 cores
    assert 32 in counts  # and one step past the best, to see it stop helping


def test_storage_waits_on_one_cpu_climb_past_a_single_worker_that_cannot_win() -> None:
    # one CPU (a quota, or each of 2 ranks' share of 2 cores), 4 ms of storage a sample: one
    # worker only moves the wait out of the main process (and pays its start), many help
    table = {n: (8.0 / max(n, 1) ** 0.9 if n > 1 else 8.0 + 0.3 * n, 0.99, 0.2) for n in range(65)}
    tried = _search(Adaptive(usable_cpus=1, max_workers=64), table)
    assert max(c.num_workers for c in tried) >= 8
    # ... while CPU-bound work on one CPU stops at the anchors
    cpu_bound = {0: (4.0, 0.9, 1.0), 1: (4.3, 0.1, 1.0)}
    assert (
        max(c.num_workers for c in _search(Adaptive(usable_cpus=1, max_workers=64), cpu_bound)) == 1
    )


def test_a_short_epoch_is_climbed_in_whole_rounds_of_its_batches() -> None:
    # 16 batches a rank (2 ranks on 2 cores), storage waits: an epoch lasts its busiest
    # worker's ceil(16 / n) batches, so 9-15 workers take the 2 rounds 8 take, 16 take one
    rounds = {n: (0.27 * -(-16 // n) + 0.01 * n, 0.9, 0.2) for n in range(1, 65)}
    tried = _search(Adaptive(usable_cpus=1, max_workers=32), {0: (4.4, 0.99, 0.2)} | rounds, 16)
    plain = [c.num_workers for c in tried if c == C(c.num_workers)]
    assert 16 in plain
    assert not any(8 < n < 16 for n in plain)  # no trial on the plateau of 8
    assert max(plain) <= 16  # and none past one round


def test_a_higher_count_that_lost_on_startups_is_tried_kept_alive() -> None:
    # 2 epochs: w=8 loses to w=4 when it starts its workers each epoch (0.5 s against 0.1 s),
    # but kept alive its second epoch runs at 5 ms a batch against w=4's 20 ms
    strategy = Adaptive(usable_cpus=2, max_workers=8, epochs=2, start_methods=())
    four, eight = timed(4, 0.02, 0.001, startup_s=0.1), timed(8, 0.005, 0.001, startup_s=0.5)
    kept_four = timed(4, 0.02, 0.001, startup_s=0.1, persistent=True, warm_s=0.02)
    others = [timed(n, 0.05 - 0.006 * n, 0.001, startup_s=0.04 * n) for n in (0, 1, 2, 3, 5)]
    assert C(8, persistent_workers=True) in _wanted(strategy, [*others, four, eight, kept_four])
    # ... but not where its startup paid once still loses
    slow_eight = timed(8, 0.018, 0.001, startup_s=0.5)
    assert C(8, persistent_workers=True) not in _wanted(
        strategy, [*others, four, slow_eight, kept_four]
    )


def _wanted(strategy: Adaptive, trials: list[Trial]) -> list[C]:
    history = History(summaries(*trials), {})
    return list(strategy._wanted(history))


def test_workers_in_whole_rounds() -> None:
    assert [fewest_for_rounds(16, n) for n in (5, 8, 9, 13, 16, 20)] == [4, 8, 8, 8, 16, 16]
    assert [fewer_rounds(16, n) for n in (5, 8, 13, 16)] == [6, 16, 16, 16]
    assert fewest_for_rounds(None, 13) == 13 and fewer_rounds(None, 13) == 14
    assert fewest_for_rounds(100_000, 23) == 23  # long epochs: as the model said


def test_a_u_shaped_curve_is_refined_above_the_best_first_while_the_step_waits() -> None:
    # 4 ms per sample: 8 beats 2 and 32 (startup), the bottom lies between 8 and 32
    table = {0: (8.0, 0.99, 0.2), 2: (4.0, 0.99, 0.3), 8: (1.13, 0.9, 0.6), 32: (1.27, 0.9, 1.0)}
    table |= {20: (0.94, 0.9, 0.9), 5: (1.6, 0.95, 0.5), 14: (0.94, 0.9, 0.8)}
    tried = _search(Adaptive(usable_cpus=2, max_workers=64), table)
    plain = [c.num_workers for c in tried if c == C(c.num_workers)]
    assert plain[:5] == [0, 2, 8, 32, 20]  # between the best and the overshoot, not below


def test_cpu_bound_data_steps_up_once_past_the_core_count_then_stops() -> None:
    # pure-Python work: CPUs saturated from 2 workers on, 4 workers do not help
    table = {0: (4.0, 0.9, 1.0), 1: (4.1, 0.9, 1.0), 2: (2.2, 0.6, 1.95), 4: (2.3, 0.6, 2.0)}
    tried = _search(Adaptive(usable_cpus=2, max_workers=64), table)
    assert C(4) in tried and all(c.num_workers <= 4 for c in tried)


def test_cpu_bound_data_keeps_climbing_while_it_wins() -> None:
    # a little more overlap with more processes than cores: 6 wins over 2 and 4
    table = {0: (4.0, 0.9, 1.0), 1: (4.1, 0.9, 1.0), 2: (2.0, 0.6, 1.95), 4: (1.8, 0.4, 2.0)}
    table |= {8: (1.9, 0.3, 2.0), 6: (1.7, 0.3, 2.0), 5: (1.75, 0.3, 2.0)}
    tried = _search(Adaptive(usable_cpus=2, max_workers=64), table)
    assert C(8) in tried and C(6) in tried and C(16) not in tried


def test_a_compute_bound_step_looks_for_fewer_workers() -> None:
    table = {
        0: (5.0, 0.6, 1.0),
        8: (2.0, 0.0, 2.0),
        7: (2.0, 0.0, 2.0),
        4: (2.01, 0.0, 2.0),
        2: (2.02, 0.01, 2.0),
    }
    tried = _search(Adaptive(usable_cpus=8, max_workers=64), table)
    assert C(4) in tried and C(16) not in tried


def test_no_workers_best_tries_one_then_stops() -> None:
    table = {0: (0.01, 0.5, 1.0), 1: (0.1, 0.5, 1.0), 2: (0.13, 0.5, 1.0)}
    tried = _search(Adaptive(usable_cpus=2, max_workers=32), table)
    assert tried == [C(0), C(2), C(1)]  # the Lightning rule is the last thing measured


def test_knobs_are_tried_at_the_best_count_and_combined() -> None:
    strategy = Adaptive(usable_cpus=2, max_workers=2, epochs=5, start_methods=("forkserver",))
    trials = [Measured(C(0), 5.0), Measured(C(2), 2.0, wait=0.3, cpu_busy=1.0), Measured(C(1), 3.0)]
    assert strategy.propose(_history(*trials)) == C(2, persistent_workers=True)
    trials += [Measured(C(2, persistent_workers=True), 1.8), Measured(C(2, prefetch_factor=4), 1.9)]
    trials += [
        Measured(C(2, in_order=False), 2.1),
        Measured(C(2, multiprocessing_context="forkserver"), 2.5),
    ]
    assert strategy.propose(_history(*trials)) == C(2, prefetch_factor=4, persistent_workers=True)


def test_max_workers_and_rejections_cap_the_search() -> None:
    table = {n: (8.0 / max(n, 1), 0.9, 0.3) for n in range(65)}
    assert all(c.num_workers <= 6 for c in _search(Adaptive(usable_cpus=2, max_workers=6), table))
    strategy = Adaptive(usable_cpus=2, max_workers=64)
    trials = [Measured(C(n), 8.0 / max(n, 1), 0.9, cpu_busy=0.3) for n in (0, 1, 2, 4)]
    history = _history(*trials, rejected={C(8): "rejected: memory"})
    assert strategy.propose(history) not in (C(8), C(16))


def test_grid_proposes_every_config_once() -> None:
    grid = Grid([C(n) for n in worker_grid(8)])
    assert [c.num_workers for c in grid.configs] == [0, 1, 2, 3, 4, 6, 8]
    assert grid.propose(_history(Measured(C(0), 1.0), Measured(C(1), 1.0))) == C(2)


def test_pick_prefers_the_cheaper_config_within_noise() -> None:
    twice = [
        Measured(C(n), t, repeat=r) for n, t in ((8, 1.0), (4, 1.02), (2, 1.5)) for r in (0, 1)
    ]
    chosen = pick(summaries(*twice))
    assert chosen is not None
    assert chosen.chosen.config == C(4) and chosen.fastest.config == C(8)
    assert "within the noise (3.0%)" in chosen.reason


def test_a_config_measured_once_wins_only_beyond_the_whole_noise_range() -> None:
    # one run of w=2 4% under w=0's median of two: within the range one run can land in
    runs = [Measured(C(0), 1.04, repeat=0), Measured(C(0), 1.04, repeat=1), Measured(C(2), 1.0)]
    chosen = pick(summaries(*runs))
    assert chosen is not None and chosen.chosen.config == C(0)
    assert (
        "within the noise (6.0%)" in chosen.reason and "one of them measured once" in chosen.reason
    )
    clear = pick(summaries(*runs[:2], Measured(C(2), 0.9)))  # 13.5% faster: a real win
    assert clear is not None and clear.chosen.config == C(2)


def test_a_challenger_must_beat_the_measured_noise() -> None:
    noisy = [Measured(C(8), e, repeat=i) for i, e in enumerate((0.8, 1.0, 1.2))]
    cheap = [Measured(C(4), e, repeat=i) for i, e in enumerate((0.9, 1.1, 1.3))]
    band = noise_band(summaries(*noisy, *cheap))
    assert band == pytest.approx((0.2 + 0.4 / 1.1 / 2) / 2)  # half the relative range, median
    alone = Measured(C(4), 1.1, repeat=5)  # never measured in the same round as w=8
    chosen = pick(summaries(*noisy, alone))
    assert chosen is not None and chosen.chosen.config == C(4)


def test_side_by_side_rounds_cancel_the_drift_they_share() -> None:
    # the machine slows 50% over three rounds; w=4 is 10% slower than w=8 in every one
    drifting = [Measured(C(8), e, repeat=i) for i, e in enumerate((0.8, 1.0, 1.2))]
    behind = [Measured(C(4), e * 1.1, repeat=i) for i, e in enumerate((0.8, 1.0, 1.2))]
    chosen = pick(summaries(*drifting, *behind))
    assert chosen is not None and chosen.chosen.config == C(8)
    # ... but where the rounds disagree, w=4 is within their noise, and cheaper
    mixed = [Measured(C(4), e, repeat=i) for i, e in enumerate((1.0, 0.95, 1.3))]
    chosen = pick(summaries(*drifting, *mixed))
    assert chosen is not None and chosen.chosen.config == C(4)
    assert "median of 3 side-by-side rounds" in chosen.reason


def test_pick_prefers_defaults_then_less_memory_within_noise() -> None:
    plain, deep, unordered = C(4), C(4, prefetch_factor=4), C(4, in_order=False)
    chosen = pick(summaries(Measured(plain, 1.0, memory=2**30), Measured(deep, 0.99, memory=2**29)))
    assert chosen is not None and chosen.chosen.config == plain  # a knob must win beyond noise
    chosen = pick(summaries(Measured(plain, 1.0), Measured(deep, 0.9)))
    assert chosen is not None and chosen.chosen.config == deep
    lean = pick(
        summaries(Measured(unordered, 1.0, memory=2**29), Measured(deep, 1.0, memory=2**30))
    )
    assert lean is not None and lean.chosen.config == unordered


def test_budget_predicts_a_trial_from_the_nearest_worker_count() -> None:
    now = [0.0]
    budget = Budget(25.0, clock=lambda: now[0])
    assert budget.predict_s(C(4), 1.0) == 2.0  # nothing measured yet: twice the trial budget
    assert budget.fits(C(4), 1.0)
    budget.spent(C(0), 6.0)
    budget.spent(C(8), 2.0)
    now[0] = 20.0
    assert budget.predict_s(C(1), 1.0) == 6.0 and not budget.fits(C(1), 1.0)
    assert budget.predict_s(C(16), 1.0) == 2.0 and budget.fits(C(16), 1.0)
    assert not budget.fits(C(16), 1.0, share=0.75)
    assert budget.predict_s(C(4), 1.0) == 2.0  # a tie goes to the larger count


def test_tune_diagnoses_its_pick_when_the_budget_leaves_time() -> None:
    result = tune(Workload(Rows(64), step=sum_step, batch_size=8), budget_s=30, max_workers=0)
    assert result.pick == C(0)
    assert result.diagnosis is not None and result.diagnosis["config"] == "w=0"
    assert result.verdict is not None and "diagnosis" not in (result.tuning or {})


def test_max_workers_zero_never_tries_a_worker() -> None:
    table = {0: (1.0, 0.9, 1.0)}
    assert _search(Adaptive(usable_cpus=2, max_workers=0), table) == [C(0)]


@pytest.mark.parametrize("best", [0, 4])
def test_with_cuda_pinned_memory_is_measured_at_the_best_count_even_without_workers(
    best: int,
) -> None:
    table = {n: (1.0 + abs(n - best), 0.5 if n < best else 0.01, 1.0) for n in range(9)}
    with_cuda = _search(Adaptive(usable_cpus=4, max_workers=8, cuda=True), table)
    assert C(best, pin_memory=True) in with_cuda
    without = _search(Adaptive(usable_cpus=4, max_workers=8, cuda=False), table)
    assert not [c for c in without if c.pin_memory]
