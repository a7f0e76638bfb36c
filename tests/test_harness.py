"""The two harness policies: offline (our command) bounds and cleans up by force; guest (inside
the user's job) takes no signal handler, stops no process but its own loader's workers, and
leaves torch's global state to the user's loop."""

from __future__ import annotations

import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import torch

from loadertune import LoaderConfig, TrialLimits, Workload
from loadertune.engine.harness import GUEST, OFFLINE, Harness
from loadertune.engine.offline import run_trial
from sample_data import HangsAt, RaisesAt, Rows

LIMITS = TrialLimits(budget_s=30.0, timeout_s=20.0)


class Spawner:
    """A step that starts a process of the user's own, and notes the SIGALRM handler it sees."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.handlers: list[Any] = []

    def __call__(self, batch: Any) -> None:
        self.handlers.append(signal.getsignal(signal.SIGALRM))
        if self.child is None:
            self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.fixture
def spawner() -> Iterator[Spawner]:
    step = Spawner()
    yield step
    if step.child is not None:
        step.child.kill()
        step.child.wait()


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _run(harness: Harness, step: Spawner, workers: int = 0) -> None:
    workload = Workload(Rows(32), step=step, batch_size=8)
    trial = run_trial(workload, LoaderConfig(workers), LIMITS, harness=harness)
    assert trial.ok, trial.error


def test_guest_takes_no_signal_handler(spawner: Spawner) -> None:
    before = signal.getsignal(signal.SIGALRM)
    _run(GUEST, spawner)
    assert spawner.handlers and all(h is before for h in spawner.handlers)


def test_offline_holds_sigalrm_during_the_trial_and_gives_it_back(spawner: Spawner) -> None:
    before = signal.getsignal(signal.SIGALRM)
    _run(OFFLINE, spawner)
    assert all(h is not before for h in spawner.handlers)
    assert signal.getsignal(signal.SIGALRM) is before


def test_guest_leaves_the_users_own_processes_alone(spawner: Spawner) -> None:
    _run(GUEST, spawner)
    assert spawner.child is not None and spawner.child.poll() is None  # still running


def test_offline_reaps_what_the_trial_started(spawner: Spawner) -> None:
    _run(OFFLINE, spawner)
    assert spawner.child is not None and spawner.child.wait(timeout=10) is not None


@pytest.mark.workers
def test_guest_stops_its_own_workers(spawner: Spawner) -> None:
    before = _children()
    _run(GUEST, spawner, workers=2)
    assert spawner.child is not None
    left = {pid for pid in _children() - before if psutil.pid_exists(pid)} - {spawner.child.pid}
    assert left <= _helpers()


def _helpers() -> set[int]:
    from loadertune.engine.harness import _multiprocessing_helpers

    return _multiprocessing_helpers()


def test_guest_leaves_torch_state_to_the_users_loop() -> None:
    """The shuffle draws its seed from torch's global RNG, as the user's own loader would;
    the guest does not wind it back (the offline harness does)."""
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    run_trial(Workload(Rows(32), batch_size=8), LoaderConfig(0), LIMITS, harness=GUEST)
    assert not torch.equal(torch.random.get_rng_state(), state)
    state = torch.random.get_rng_state()
    run_trial(Workload(Rows(32), batch_size=8), LoaderConfig(0), LIMITS, harness=OFFLINE)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_guest_still_explains_a_failure_without_refetching_in_the_users_process() -> None:
    workload = Workload(RaisesAt(bad=5, n=32), batch_size=1, shuffle=False)
    trial = run_trial(workload, LoaderConfig(0), LIMITS, harness=GUEST)
    assert trial.error is not None and trial.error.kind == "exception"
    assert "corrupt record 5" in trial.error.message and trial.error.batch == 5
    assert trial.error.index is None  # the offline harness names it by re-fetching


def test_guest_has_no_watchdog_so_the_users_timeout_rules() -> None:
    """No SIGALRM of ours: a hang in the main process is the user's loop's to bound. Here the
    user's own alarm (as a job would set) ends it, and the trial reports that exception."""

    class UserTimeoutError(Exception):
        pass

    def alarm(signum: int, frame: Any) -> None:
        raise UserTimeoutError("the job's own alarm")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        workload = Workload(HangsAt(bad=2, n=16), batch_size=1, shuffle=False)
        trial = run_trial(workload, LoaderConfig(0), TrialLimits(30, 0.1), harness=GUEST)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert trial.error is not None and "the job's own alarm" in trial.error.message


def test_guest_leaves_the_users_warnings_to_the_user() -> None:
    def warns(batch: Any) -> None:
        warnings.warn("the user's own warning", UserWarning, stacklevel=1)

    workload = Workload(Rows(16), step=warns, batch_size=8)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        guest = run_trial(workload, LoaderConfig(0), LIMITS, harness=GUEST)
    assert any("the user's own warning" in str(w.message) for w in shown)
    assert not any("the user's own warning" in w for w in guest.warnings)
    offline = run_trial(workload, LoaderConfig(0), LIMITS, harness=OFFLINE)
    assert any("the user's own warning" in w for w in offline.warnings)  # labelled, kept


def test_garbage_is_collected_before_workers_fork_and_not_before_a_trial_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collection leaves the caches cold for the steps after it: only where workers
    fork does it buy something (no collection falling due while they are forked)."""
    import gc

    from fakebackend import FakeBackend, FakeClock, fake_step

    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    clock = FakeClock()
    workload = Workload(Rows(16), step=fake_step(clock, 0.001), batch_size=4, shuffle=False)
    for workers in (0, 2):
        backend = FakeBackend(torch.zeros(16, 4), 4, clock, 0.001)
        trial = run_trial(
            workload, LoaderConfig(workers), TrialLimits(), clock=clock, backend=backend
        )
        assert trial.ok
    assert collected == [1]  # the trial with workers only
