"""The passive recorder: the offline trial (our loop) and a guest recording (a hand-written
loop driving the recorder) give the same figures on the same data; the recorder's own rules."""

from __future__ import annotations

import pytest
import torch

from fakebackend import FakeBackend, FakeClock, fake_step
from loadertune import LoaderConfig, Trial, TrialLimits, Workload
from loadertune.engine.harness import GUEST
from loadertune.engine.offline import run_trial
from loadertune.engine.probe import IndexRecorder
from loadertune.engine.recorder import Recorder
from sample_data import Rows

ROWS, BATCH, MAKE_S, STEP_S = 64, 8, 0.003, 0.002
LIMITS = TrialLimits(budget_s=30.0, timeout_s=20.0)
FIGURES = ("epoch_s", "startup_s", "samples_per_s", "data_wait_fraction", "batches", "complete")
RAW = ("request_s", "ready_s", "step_end_s", "done_s", "worker_id", "n_samples")


def _setup() -> tuple[FakeClock, FakeBackend, Workload]:
    clock = FakeClock()
    rows = torch.arange(ROWS * 4, dtype=torch.float32).reshape(ROWS, 4)
    backend = FakeBackend(rows, BATCH, clock, MAKE_S)
    workload = Workload(Rows(ROWS), step=fake_step(clock, STEP_S), batch_size=BATCH, shuffle=False)
    return clock, backend, workload


def _offline() -> Trial:
    clock, backend, workload = _setup()
    return run_trial(workload, LoaderConfig(0), LIMITS, clock=clock, backend=backend)


def _guest(explicit: bool) -> Trial:
    """The user's loop: ``for batch in loader: step(batch)``, the recorder told around it."""
    clock, backend, workload = _setup()
    step = workload.step
    assert step is not None
    trial = Trial(LoaderConfig(0), 0, workload.epoch_batches())
    recorder = Recorder(trial, clock=clock)
    loader = backend.build(trial.config, IndexRecorder([]))
    recorder.begin()
    iterator = iter(loader)
    if not explicit:
        for batch in recorder.batches(iterator):
            step(batch)
        return trial
    while True:
        recorder.requested()
        try:
            item = next(iterator)
        except StopIteration:
            recorder.ended()
            return trial
        recorder.received(item)
        step(item.batch)
        recorder.stepped()


@pytest.mark.parametrize("explicit", [True, False], ids=["calls", "for-loop"])
def test_guest_recording_gives_the_offline_trials_figures(explicit: bool) -> None:
    offline, guest = _offline(), _guest(explicit)
    assert offline.ok and offline.complete and offline.batches == ROWS // BATCH
    for name in FIGURES:
        assert getattr(guest, name) == pytest.approx(getattr(offline, name)), name
    guest.round_raw()
    for name in RAW:
        assert getattr(guest, name) == pytest.approx(getattr(offline, name)), name
    # and the figures are the fake clock's: a batch every MAKE_S + STEP_S once started
    assert offline.epoch_s == pytest.approx(ROWS // BATCH * (MAKE_S + STEP_S))
    assert offline.data_wait_fraction == pytest.approx(MAKE_S / (MAKE_S + STEP_S))


def test_offline_trial_shuts_its_backend_down_once() -> None:
    clock, backend, workload = _setup()
    run_trial(workload, LoaderConfig(0), LIMITS, clock=clock, backend=backend)
    assert backend.shutdowns == [False]


def test_a_failed_step_shuts_down_with_kill_first() -> None:
    clock, backend, _ = _setup()

    def bad_step(batch: object) -> None:
        raise ValueError("bad step")

    workload = Workload(Rows(ROWS), step=bad_step, batch_size=BATCH, shuffle=False)
    trial = run_trial(workload, LoaderConfig(0), LIMITS, clock=clock, backend=backend)
    assert trial.error is not None and trial.error.kind == "step"
    assert backend.shutdowns == [True]


def test_a_loop_that_breaks_early_keeps_the_last_step() -> None:
    clock, backend, workload = _setup()
    trial = Trial(LoaderConfig(0), 0, workload.epoch_batches())
    recorder = Recorder(trial, clock=clock)
    recorder.begin()
    loader = backend.build(trial.config, IndexRecorder([]))
    for seen, _ in enumerate(recorder.batches(iter(loader))):
        clock.advance(STEP_S)
        if seen == 2:
            break
    assert trial.batches == 3 and not trial.complete
    assert trial.step_end_s[-1] == pytest.approx(3 * (MAKE_S + STEP_S))


def test_untimed_work_is_left_out_of_the_clock() -> None:
    clock = FakeClock()
    trial = Trial(LoaderConfig(0), 0, 4)
    recorder = Recorder(trial, clock=clock)
    recorder.begin()
    recorder.untimed(lambda: clock.advance(5.0))
    recorder.requested()
    assert recorder.start == pytest.approx(105.0)


def test_guest_harness_runs_the_same_trial_as_offline() -> None:
    clock, backend, workload = _setup()
    config = LoaderConfig(0)
    guest = run_trial(workload, config, LIMITS, clock=clock, backend=backend, harness=GUEST)
    assert guest.ok and guest.epoch_s == pytest.approx(_offline().epoch_s)


def test_a_loader_without_probes_is_refused_with_what_to_use() -> None:
    trial = Trial(LoaderConfig(0), 0, 2)
    recorder = Recorder(trial)
    recorder.begin()
    with pytest.raises(TypeError, match="build_loader"):
        list(recorder.batches(iter([torch.zeros(2), torch.zeros(2)])))
