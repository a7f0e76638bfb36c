from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadertune import Interrupted, LoaderConfig, TrialEvent, TrialLimits, Workload, bench
from loadertune.engine.bench import schedule
from sample_data import InterruptsAt, RaisesAt, Rows, sum_step

LIMITS = TrialLimits(budget_s=30, timeout_s=20)


@given(st.integers(1, 6), st.integers(1, 5))
def test_schedule_interleaves_and_rotates(n_configs: int, repeats: int) -> None:
    configs = [LoaderConfig(n) for n in range(n_configs)]
    order = schedule(configs, repeats)
    assert len(order) == n_configs * repeats
    for r in range(repeats):  # every round runs every config once
        round_ = [c for rep, c in order if rep == r]
        assert sorted(c.num_workers for c in round_) == list(range(n_configs))
    firsts = {order[r * n_configs][1] for r in range(repeats)}
    assert len(firsts) == min(repeats, n_configs)  # no config always runs first


def test_every_trial_is_saved_as_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    seen: list[int] = []

    def on_trial(event: TrialEvent) -> None:
        if event.trial is not None:
            seen.append(len(json.loads(path.read_text())["trials"]))

    configs = [LoaderConfig(0), LoaderConfig(0, in_order=False)]
    result = bench(
        Workload(Rows(64), step=sum_step, batch_size=8),
        configs,
        repeats=2,
        limits=LIMITS,
        on_trial=on_trial,
        json_path=path,
    )
    assert seen == [1, 2, 3, 4]
    assert len(result.trials) == 4 and all(t.ok for t in result.trials)


def test_a_failing_config_does_not_stop_the_others() -> None:
    class FailsInMainOnly(RaisesAt):
        """Fails only when fetched in the main process (num_workers=0)."""

        def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
            from torch.utils.data import get_worker_info

            if get_worker_info() is None:
                return super().__getitem__(index)
            return Rows.__getitem__(self, index)

    result = bench(
        Workload(FailsInMainOnly(bad=3), batch_size=4, shuffle=False),
        [LoaderConfig(0), LoaderConfig(1)],
        repeats=1,
        limits=LIMITS,
    )
    by_workers = {t.config.num_workers: t for t in result.trials}
    assert not by_workers[0].ok and by_workers[1].ok
    assert result.best is not None and result.best.config.num_workers == 1


class InterruptsInWorkers(InterruptsAt):
    """Ctrl-C arrives only while a worker process is loading: num_workers=0 completes."""

    def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
        from torch.utils.data import get_worker_info

        if get_worker_info() is None:
            return Rows.__getitem__(self, index)
        return super().__getitem__(index)


@pytest.mark.workers
def test_ctrl_c_keeps_what_was_measured(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    workload = Workload(InterruptsInWorkers(os.getpid(), bad=5), batch_size=1, shuffle=False)
    with pytest.raises(Interrupted) as info:
        bench(
            workload, [LoaderConfig(0), LoaderConfig(1)], repeats=1, limits=LIMITS, json_path=path
        )
    assert info.value.result.interrupted
    finished, cut = info.value.result.trials
    assert finished.ok and finished.config.num_workers == 0
    assert cut.error is not None and cut.error.kind == "interrupted"  # kept, marked
    doc = json.loads(path.read_text())
    assert doc["interrupted"] is True and len(doc["trials"]) == 2
    assert doc["best"]["loader_kwargs"]["num_workers"] == 0


def test_bad_arguments() -> None:
    workload = Workload(Rows(8), batch_size=4)
    with pytest.raises(ValueError, match="no configs"):
        bench(workload, [])
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench(workload, [LoaderConfig()], repeats=0)


class SignalBecomesAnError(Rows):
    """As if Ctrl-C landed inside library code that turned it into an error of its own."""

    def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
        from loadertune.engine import watchdog as guard

        if index == 3:
            guard._interrupt_requested.set()  # the CLI's handler ran...
            raise RuntimeError("a library caught the KeyboardInterrupt")  # ...and this came out
        return super().__getitem__(index)


def test_an_error_raised_while_an_interrupt_is_pending_is_the_interrupt() -> None:
    with pytest.raises(Interrupted) as info:
        bench(
            Workload(SignalBecomesAnError(16), batch_size=4, shuffle=False),
            [LoaderConfig(0)],
            repeats=1,
            limits=LIMITS,
        )
    (cut,) = info.value.result.trials
    assert cut.error is not None and cut.error.kind == "interrupted"


def test_an_interrupt_swallowed_during_fork_is_raised_at_the_next_trial() -> None:
    """Python ignores a KeyboardInterrupt raised in an at-fork handler; the CLI's handler
    remembers it, and the next safe point raises it again."""
    from loadertune.engine import watchdog as guard

    guard._interrupt_requested.set()  # as if the handler had run inside os.fork
    with pytest.raises(Interrupted) as info:
        bench(Workload(Rows(16), batch_size=4), [LoaderConfig(0)], repeats=1, limits=LIMITS)
    assert info.value.result.interrupted
    assert not guard._interrupt_requested.is_set()
