"""One offline trial: our loop plus the recorder. Build the loader for a config through its
backend, run the user's step on its batches, record raw times, and always shut the workers
down, whatever the user's code did."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loadertune.engine.backends import LoaderBackend
from loadertune.engine.backends.dataloader import DataLoaderBackend
from loadertune.engine.counts import check_batch_count, count_samples_from_indices
from loadertune.engine.cpu import tree_cpu_seconds
from loadertune.engine.device import Device, Devices, NoMarks, StepMarks, device_for
from loadertune.engine.failures import StepError, explain
from loadertune.engine.harness import OFFLINE, Harness, Watch
from loadertune.engine.heard import labelled
from loadertune.engine.machine import shm_bytes
from loadertune.engine.memory import MemorySampler
from loadertune.engine.memwatch import MemoryLimitExceeded, MemoryWatch, WatchPlan
from loadertune.engine.probe import IndexRecorder, ProbedBatch
from loadertune.engine.recorder import Clock, Recorder
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import TrialTimeout
from loadertune.records.limits import TrialLimits, should_stop
from loadertune.records.trial import FAILED, Trial, TrialError

PREPARED_STEPS = 1024  # CUDA event pairs made before the clock starts (more as steps need them)
WATCHDOG_RESET_SHARE = 0.1  # re-arm the no-batch timer once a tenth of it has passed, not per
# batch: a setitimer call per batch was a measurable share of a cheap in-memory epoch

# Memory. Reading PSS costs ~10 ms of CPU per process once torch is mapped (measured here: 8 workers
# ~80 ms, so 32 workers ~0.3 s), and a background read inside the timed window steals that from
# the trial on a 2-core machine. So memory is read only where no clock runs: before iter(), at
# the pause before the epoch's final next() (workers alive, the epoch's growth done), and at the
# end of a cut-short trial (before its workers are stopped). A transient peak mid-epoch can be
# missed; growth over the epoch is not. Within the window only a cheap reading runs, every 0.1 s:
# the memory limit's watch (memwatch.py), which reads PSS only to confirm a stop.


class TrialInterrupted(KeyboardInterrupt):
    """Ctrl-C during a trial; ``trial`` holds what it measured, marked interrupted."""

    def __init__(self, trial: Trial) -> None:
        super().__init__("interrupted")
        self.trial = trial


@dataclass(frozen=True)
class _Parts:
    """What one trial is measured with, beside the workload: where the loader comes from, the
    policy it runs under, the clock, the size of /dev/shm, and the device the step may run on
    (asked before the trial and, while it answers None, once more after the first step)."""

    backend: LoaderBackend
    harness: Harness
    clock: Clock
    shm_total_bytes: int | None
    devices: Devices


def run_trial(
    workload: Workload,
    config: LoaderConfig,
    limits: TrialLimits,
    *,
    repeat: int = 0,
    clock: Clock = time.perf_counter,
    shm_total: Callable[[], int | None] = shm_bytes,
    stream_batches: int | None = None,
    backend: LoaderBackend | None = None,
    harness: Harness = OFFLINE,
    devices: Devices | None = None,
) -> Trial:
    """Measure ``config`` on ``workload`` once. Failures are recorded in the trial, not raised;
    KeyboardInterrupt is recorded and re-raised. No worker outlives the call. ``shm_total``
    gives the size of /dev/shm in bytes (batches in flight are checked against it). A dataset
    without length runs ``stream_batches`` batches (its stream's length, when known), else
    the workload's batch budget. ``backend`` builds the loader (torch's DataLoader unless
    given); ``harness`` is the policy (:data:`~harness.OFFLINE`: watchdog and reaping).
    ``devices`` says which device to synchronize and mark (by default the workload's
    ``device``: see :func:`~loadertune.engine.device.device_for`)."""
    epoch_batches = workload.epoch_batches()
    budget = (stream_batches or workload.batch_budget) if epoch_batches is None else epoch_batches
    trial = Trial(config, repeat, budget)
    chosen = devices or (lambda: device_for(workload.device))
    parts = _Parts(backend or DataLoaderBackend(workload), harness, clock, shm_total(), chosen)
    with harness.around(forks=config.num_workers > 0):
        _Run(workload, trial, limits, parts, by_budget=epoch_batches is None).measure()
    return trial


class _Run:
    """The state of one trial while it runs, and its steps: set up, loop, explain, clean up."""

    def __init__(
        self,
        workload: Workload,
        trial: Trial,
        limits: TrialLimits,
        parts: _Parts,
        *,
        by_budget: bool,
    ) -> None:
        self.workload, self.trial, self.limits, self.parts = workload, trial, limits, parts
        self.by_budget = by_budget  # no __len__: the batch budget stands for the epoch
        self.budget = trial.epoch_batches or 0  # batches planned (the loop may learn fewer)
        self.indices = IndexRecorder([])
        self.sampler = MemorySampler(background=False)  # reads outside the clock only (above)
        plan = WatchPlan(limits.max_memory_bytes, self.budget, trial.config.in_flight_batches)
        self.watch = MemoryWatch(plan, lambda: trial.batches)
        count = by_budget or workload.is_iterable or not trial.config.in_order
        self.recorder = Recorder(
            trial, clock=parts.clock, count_samples=count, shm_total_bytes=parts.shm_total_bytes
        )
        self.iterator: Iterator[ProbedBatch] | None = None
        self.heard: list[warnings.WarningMessage] = []
        self.device: Device | None = None
        self.marks: StepMarks | NoMarks = NoMarks()

    def measure(self) -> None:
        harness = self.parts.harness
        try:
            watchdog = harness.watchdog(self.limits.timeout_s)
            with watchdog, self.sampler, self.watch, harness.hearing() as self.heard:
                loader = self._start(watchdog)
                self._loop(watchdog)
                self._after_loop(loader)
            _raise_if_stopped(self.watch)  # decided as the loop ended, with no signal to send
        except BaseException as exc:  # user code may raise anything
            # A signal wins: torch or user code it landed in may have raised something else.
            if not isinstance(exc, KeyboardInterrupt) and not harness.interrupt_pending():
                self._failed(exc)
            else:
                harness.clear_interrupt()
                self.trial.status = FAILED
                self.trial.error = TrialError("interrupted", "interrupted (Ctrl-C or SIGTERM)")
                raise TrialInterrupted(self.trial) from exc
        finally:
            self._stop()
            self._keep_raw()

    def _start(self, watchdog: Watch) -> Any:
        """Build the loader and start its workers; the trial's clock starts at ``iter()``."""
        backend, trial = self.parts.backend, self.trial
        loader = backend.build(trial.config, self.indices)
        cpu_before = _cpu_now()  # read before the clock: a scan of the process table
        self.watch.arm(_first_sample(self.sampler))
        self._use(self.parts.devices(), prepare=True)
        if self.device is not None:
            self.device.synchronize()  # work queued before the trial is not the trial's
        self.recorder.begin()
        trial.cpu.append((0.0, cpu_before))
        self.iterator = iter(loader)
        # after iter(), so no thread of ours runs while the workers are forked
        pids = [os.getpid(), *backend.worker_pids(self.iterator)]
        self.watch.start(watchdog.stop, lambda: pids)
        self.parts.harness.check_interrupt()
        return loader

    def _loop(self, watchdog: Watch) -> None:
        """Consume batches until the epoch ends or the trial has seen enough; stop at once when
        the memory watch says so."""
        trial, recorder, iterator = self.trial, self.recorder, self.iterator
        step, clock, harness = self.workload.step, self.parts.clock, self.parts.harness
        reset_s = self.limits.timeout_s * WATCHDOG_RESET_SHARE
        last_reset = clock()
        while iterator is not None:
            if trial.batches == trial.epoch_batches and not self.by_budget:
                self._synchronize()  # timed: the epoch's queued work is the epoch's
                recorder.untimed(self._sample_at_epoch_end)
            recorder.requested()
            try:
                item: ProbedBatch = next(iterator)
            except StopIteration:
                self._synchronize()
                recorder.ended()
                if self.by_budget:  # the stream ended before the batch budget: a real epoch
                    trial.epoch_batches = trial.batches
                return
            recorder.received(item)
            if step is not None:
                self.marks.before()
                _run_step(step, item.batch, trial.batches)
                self.marks.after()
            ended = recorder.stepped()
            if self.device is None and trial.batches == 1 and step is not None:
                self._use(self.parts.devices())  # the first step may have initialised CUDA
            if self.watch.stopped is not None:  # the signal was caught by user code, or not sent
                raise MemoryLimitExceeded(self.watch.stopped)
            if ended - last_reset > reset_s:
                watchdog.reset()
                harness.check_interrupt()
                last_reset = ended
            if self._enough(ended - recorder.start):
                self._cut()
                return

    def _use(self, device: Device | None, *, prepare: bool = False) -> None:
        """Synchronize and mark ``device`` from now on (no device: nothing to wait for);
        ``prepare``: make the first marks now, outside the clock (later ones as needed)."""
        if device is None:
            return
        self.device, self.marks = device, StepMarks(device)
        if prepare:
            device.prepare(2 * min(self.budget or 1, PREPARED_STEPS))
        self.trial.device = device.name

    def _synchronize(self) -> None:
        if self.device is not None:
            self.device.synchronize()

    def _cut(self) -> None:
        """The trial stops before its epoch's end: the last step ends when its queued work
        is done, so the epoch's estimate starts from there."""
        if self.device is None:
            return
        self.device.synchronize()
        trial, now = self.trial, self.parts.clock() - self.recorder.start
        trial.step_end_s[-1] = now
        if trial.complete:  # a stream's batch budget: its "epoch" ends here
            trial.end_s = round(now, 6)

    def _enough(self, elapsed_s: float) -> bool:
        trial = self.trial
        if self.by_budget and trial.batches >= (trial.epoch_batches or 0):
            trial.complete, trial.end_s = True, round(elapsed_s, 6)  # the budget is its "epoch"
            return True
        steady_s = elapsed_s - trial.ready_s[0]  # startup is paid whatever the budget
        return should_stop(trial.batches, trial.config, steady_s, self.limits.budget_s)

    def _sample_at_epoch_end(self) -> None:
        """Memory while the workers still live (the last ``next()`` stops them), and CPU time,
        with the trial's clock stopped: nothing is in flight any more."""
        paused = self.parts.clock() - self.recorder.start
        self.trial.cpu.append((round(paused, 6), _cpu_now()))
        self.sampler.sample()

    def _after_loop(self, loader: Any) -> None:
        trial, start = self.trial, self.recorder.start
        expected = None if self.by_budget else self.budget
        check_batch_count(trial, self.workload, expected, self.budget)
        count_samples_from_indices(trial, self.indices)  # before a second epoch resets it
        trial.handed_s = _since(self.indices.handed_s, start)  # ... and so are these
        if not trial.complete:
            trial.cpu.append((round(self.parts.clock() - start, 6), _cpu_now()))
        if trial.config.persistent_workers and self.workload.epochs > 1:
            trial.warm_startup_s = round(_warm_startup_s(loader, self.parts.clock), 6)

    def _failed(self, exc: BaseException) -> None:
        # A stop wins: a worker that died of the same memory, or what was raised as the stop
        # landed, is not the cause.
        cause = MemoryLimitExceeded(self.watch.stopped) if self.watch.stopped else exc
        trial = self.trial
        dead = self.parts.backend.dead_workers(self.iterator)
        trial.status = FAILED
        trial.error = explain(
            cause,
            trial,
            self.workload,
            self.indices,
            dead=dead,
            shm_total_bytes=self.parts.shm_total_bytes,
            harness=self.parts.harness,
        )

    def _stop(self) -> None:
        """Shut the iterator's workers down (killed first after a failure)."""
        began = time.perf_counter()
        self.parts.backend.shutdown(self.iterator, kill_first=not self.trial.ok)
        self.trial.shutdown_s = round(time.perf_counter() - began, 6)

    def _keep_raw(self) -> None:
        """Into the trial, in seconds since its start: what the probes recorded beside the
        loop, the batch sizes its sampler handed out, and the warnings user code raised."""
        trial, start = self.trial, self.recorder.start
        trial.trim()
        trial.round_raw()
        if not trial.handed_s:  # not kept yet: the trial ended before its epoch did
            trial.handed_s = _since(self.indices.handed_s, start)
        trial.memory = [(round(t - start, 6), b) for t, b in self.sampler.samples]
        trial.memory_metric = self.sampler.metric
        trial.memory_watch = [(round(t - start, 6), n, b) for t, n, b in self.watch.samples]
        count_samples_from_indices(trial, self.indices)
        trial.warnings += labelled(self.heard)
        self._read_marks()

    def _read_marks(self) -> None:
        """The device-side times of the marked steps, once all their work is done."""
        if self.device is None:
            return
        try:
            self.device.synchronize()
            starts, ends = self.marks.read()
        except Exception as exc:  # noqa: BLE001 - a device error must not cost the trial
            self.trial.warnings.append(f"the GPU's step times could not be read: {exc}")
            return
        n = min(len(starts), len(ends))
        self.trial.gpu_start_s = [round(t, 6) for t in starts[:n]]
        self.trial.gpu_end_s = [round(t, 6) for t in ends[:n]]


def _raise_if_stopped(watch: MemoryWatch) -> None:
    if watch.stopped is not None:
        raise MemoryLimitExceeded(watch.stopped)


def _since(times: list[float], start: float) -> list[float]:
    return [round(t - start, 6) for t in times]


def _first_sample(sampler: MemorySampler) -> tuple[int, str] | None:
    """The memory read as the trial began (before the loader existed), if the read worked."""
    samples = sampler.samples
    return (samples[0][1], sampler.metric) if samples else None


def _run_step(step: Callable[[Any], Any], batch: Any, number: int) -> None:
    try:
        step(batch)
    except TrialTimeout as exc:  # the watchdog fired inside the step: the data is not to blame
        raise TrialTimeout(f"the step did not return: {exc}") from exc
    except (KeyboardInterrupt, MemoryLimitExceeded):
        raise
    except Exception as exc:
        raise StepError(exc, number) from exc


def _cpu_now() -> float:
    return round(tree_cpu_seconds(), 4)


def _warm_startup_s(loader: Any, clock: Clock) -> float:
    """Time to the first batch of a second epoch (persistent workers are already running)."""
    begin = clock()
    iterator = iter(loader)
    next(iterator, None)
    return clock() - begin
