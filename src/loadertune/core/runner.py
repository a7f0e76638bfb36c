"""Run one trial: build the loader for a config, run the user's step on its batches, record raw
times, and always shut the workers down, whatever the user's code did."""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loadertune.core import guard, stats
from loadertune.core.config import LoaderConfig
from loadertune.core.cpu import tree_cpu_seconds
from loadertune.core.errors import TrialTimeout
from loadertune.core.heard import hearing, labelled
from loadertune.core.machine import shm_bytes, shm_warning
from loadertune.core.memory import MemorySampler
from loadertune.core.memwatch import MemoryLimitExceeded, MemoryWatch, WatchPlan
from loadertune.core.probe import IndexRecorder, ProbedBatch
from loadertune.core.trial import FAILED, Trial, TrialError
from loadertune.core.workload import Workload

MIN_WINDOW_ROUNDS = 6  # a cut-short trial measures at least this many prefetch stocks' worth
HARD_CAP_FACTOR = 3.0  # ...but never runs past this many times its budget to get them
WATCHDOG_RESET_SHARE = 0.1  # re-arm the no-batch timer once a tenth of it has passed, not per
# batch: a setitimer call per batch was a measurable share of a cheap in-memory epoch
MIN_STEADY_BATCHES = 4  # plus these, so a loader without workers still has a window

Clock = Callable[[], float]

# Memory. Reading PSS costs ~10 ms of CPU per process once torch is mapped (measured here: 8 workers
# ~80 ms, so 32 workers ~0.3 s), and a background read inside the timed window steals that from
# the trial on a 2-core machine. So memory is read only where no clock runs: before iter(), at
# the pause before the epoch's final next() (workers alive, the epoch's growth done), and at the
# end of a cut-short trial (before its workers are stopped). A transient peak mid-epoch can be
# missed; growth over the epoch is not. Within the window only a cheap reading runs, every 0.1 s:
# the memory limit's watch (memwatch.py), which reads PSS only to confirm a stop.


@dataclass(frozen=True)
class TrialLimits:
    """How long a trial may run: ``budget_s`` after its first batch before cutting the epoch
    short (once enough batches were seen to estimate the rest; never past ``HARD_CAP_FACTOR``
    times the budget), ``timeout_s`` without any batch before failing. With
    ``max_memory_bytes`` a trial is stopped when the memory of the main process and its workers
    passes it, or is heading past it by the end of the epoch (``None``: no limit)."""

    budget_s: float = 10.0
    timeout_s: float = 60.0
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"trial budget and timeout must be > 0, got {self}")
        if self.max_memory_bytes is not None and self.max_memory_bytes <= 0:
            raise ValueError(f"max_memory_bytes must be > 0, got {self.max_memory_bytes!r}")


class TrialInterrupted(KeyboardInterrupt):
    """Ctrl-C during a trial; ``trial`` holds what it measured, marked interrupted."""

    def __init__(self, trial: Trial) -> None:
        super().__init__("interrupted")
        self.trial = trial


def min_batches(config: LoaderConfig) -> int:
    """Batches a cut-short trial should see so the stock-corrected rate has a wide window."""
    return config.in_flight_batches * (MIN_WINDOW_ROUNDS + 1) + MIN_STEADY_BATCHES


def bare_min_batches(config: LoaderConfig) -> int:
    """The fewest batches with which the stock-corrected rate exists at all (see
    :func:`stats.steady_rate`): one stock skipped, one stock beyond the horizon, a window.
    A trial is never cut before this, however long it takes: a rate from fewer batches is a
    guess (a 32-worker epoch cut at 6 batches once estimated 8x its real length)."""
    stock = config.in_flight_batches
    return 2 * stock + stats.SAFETY_BATCHES + stats.MIN_WINDOW_BATCHES + 1


def run_trial(
    workload: Workload,
    config: LoaderConfig,
    limits: TrialLimits,
    *,
    repeat: int = 0,
    clock: Clock = time.perf_counter,
    shm_total: Callable[[], int | None] = shm_bytes,
    stream_batches: int | None = None,
) -> Trial:
    """Measure ``config`` on ``workload`` once. Failures are recorded in the trial, not raised;
    KeyboardInterrupt is recorded and re-raised. No worker outlives the call. ``shm_total``
    gives the size of /dev/shm in bytes (batches in flight are checked against it). A dataset
    without length runs ``stream_batches`` batches (its stream's length, when known), else
    the workload's batch budget."""
    epoch_batches = workload.epoch_batches()
    budget = (stream_batches or workload.batch_budget) if epoch_batches is None else epoch_batches
    trial = Trial(config, repeat, budget)
    recorder = IndexRecorder([])
    before = guard.child_pids()
    _before_forking()
    sampler = MemorySampler(background=False)  # reads outside the clock only (see above)
    plan = WatchPlan(limits.max_memory_bytes, budget, config.in_flight_batches)
    watch = MemoryWatch(plan, lambda: trial.batches)
    shm_total_bytes = shm_total()
    iterator: Any = None
    heard: list[warnings.WarningMessage] = []
    saved = TorchState.save()
    start = clock()
    try:
        with guard.Watchdog(limits.timeout_s) as watchdog, sampler, watch, hearing() as heard:
            loader = workload.build_loader(config, recorder)
            cpu_before = _cpu_now()  # read before the clock: a scan of the process table
            watch.arm(_first_sample(sampler))
            start = clock()
            trial.cpu.append((0.0, cpu_before))
            iterator = iter(loader)
            # after iter(), so no thread of ours runs while the workers are forked
            watch.start(watchdog.stop, _tree_pids(iterator))
            guard.check_interrupt()
            loop = _Loop(trial, workload, limits, clock, start, epoch_batches is None, sampler)
            loop.run(iterator, watchdog, watch, shm_total_bytes)
            _check_batch_count(trial, workload, epoch_batches, budget)
            _count_samples_from_indices(trial, recorder)  # before a second epoch resets it
            trial.handed_s = _handed_since(recorder, start)  # ... and so are these
            if not trial.complete:
                trial.cpu.append((_us(clock() - loop.start), _cpu_now()))
            if config.persistent_workers and workload.epochs > 1:
                trial.warm_startup_s = _us(_warm_startup_s(loader, clock))
        _raise_if_stopped(watch)  # decided as the loop ended, with no signal to deliver it
    except KeyboardInterrupt as exc:
        guard.clear_interrupt()
        trial.status, trial.error = FAILED, TrialError("interrupted", "interrupted by the user")
        raise TrialInterrupted(trial) from exc
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything; we report it
        # A stop wins: a worker that died of the same memory, or what was raised as the stop
        # landed, is not the cause.
        cause = MemoryLimitExceeded(watch.stopped) if watch.stopped else exc
        scene = _Scene(workload, recorder, guard.dead_workers(iterator), shm_total_bytes)
        trial.status, trial.error = FAILED, _explain(cause, trial, scene)
    finally:
        _stop(trial, iterator, before)
        saved.restore()
        _keep_raw(trial, start, recorder, (sampler, watch), heard)
    return trial


def _stop(trial: Trial, iterator: Any, before: set[int]) -> None:
    """Shut the iterator's workers down (killed first after a failure), then reap any other
    child the trial started."""
    trial.shutdown_s = _us(guard.shutdown_iterator(iterator, kill_first=not trial.ok))
    guard.reap_children(before)


def _before_forking() -> None:
    """Untimed, before any worker is forked: one temp folder for all workers, and no garbage
    collection due. A collection falling due while workers are forked writes to every object,
    copying the pages they share: forking 28 workers took 1.3-1.8 s instead of 0.5 s here
    once a few trials' worth of our own objects had piled up (a plain loop did not pay it)."""
    guard.share_temp_dir()
    gc.collect()


def _keep_raw(
    trial: Trial,
    start: float,
    recorder: IndexRecorder,
    memory: tuple[MemorySampler, MemoryWatch],
    heard: list[warnings.WarningMessage],
) -> None:
    """Into the trial, in seconds since ``start``: what the probes recorded beside the loop,
    the batch sizes its sampler handed out, and the warnings user code raised."""
    sampler, watch = memory
    trial.trim()
    trial.round_raw()
    if not trial.handed_s:  # not kept yet: the trial ended before its epoch did
        trial.handed_s = _handed_since(recorder, start)
    trial.memory = [(_us(t - start), b) for t, b in sampler.samples]
    trial.memory_metric = sampler.metric
    trial.memory_watch = [(_us(t - start), n, b) for t, n, b in watch.samples]
    _count_samples_from_indices(trial, recorder)
    trial.warnings += labelled(heard)


def _handed_since(recorder: IndexRecorder, start: float) -> list[float]:
    return [_us(t - start) for t in recorder.handed_s]


def _first_sample(sampler: MemorySampler) -> tuple[int, str] | None:
    """The memory read as the trial began (before the loader existed), if the read worked."""
    samples = sampler.samples
    return (samples[0][1], sampler.metric) if samples else None


def _tree_pids(iterator: Any) -> Callable[[], list[int]]:
    """This process and the iterator's workers: whose page faults bound the trial's growth."""
    workers = [w.pid for w in getattr(iterator, "_workers", []) if w.pid]
    pids = [os.getpid(), *workers]
    return lambda: pids


def _raise_if_stopped(watch: MemoryWatch) -> None:
    if watch.stopped is not None:
        raise MemoryLimitExceeded(watch.stopped)


def _check_batch_count(trial: Trial, workload: Workload, expected: int | None, budget: int) -> None:
    """Warn when a whole epoch delivered another number of batches than its length says: an
    IterableDataset that does not split its work across workers repeats it in each, and one
    whose ``__len__`` is wrong ends early (the configs then do unequal work)."""
    if not trial.complete:
        return
    if expected is not None and trial.batches != expected and workload.is_iterable:
        why = (
            "each worker repeats the whole stream: split it with get_worker_info() in __iter__"
            if trial.batches > expected and trial.config.num_workers > 1
            else "the dataset's __len__ does not match what it yields"
        )
        trial.warnings.append(
            f"the epoch delivered {trial.batches} batches where the loader's length says "
            f"{expected}: {why}"
        )
    elif expected is None and trial.batches < budget:
        trial.warnings.append(stream_note(trial.batches, budget))


STREAM_ENDED = "the stream ended after"


def stream_note(batches: int, budget: int, *, every_config: bool = False) -> str:
    """What a stream that ended before the batch budget means for the figures: of one trial,
    or (``every_config``) of a run that measured every config for the stream's length."""
    then = (
        "every config is measured for those batches (those cut short are estimated for them)"
        if every_config
        else "the figures are for that shorter run"
    )
    return f"{STREAM_ENDED} {batches} batches, before the --batches budget of {budget}: {then}"


def _count_samples_from_indices(trial: Trial, recorder: IndexRecorder) -> None:
    """Exact batch sizes from the sampler, where batches arrive in the order handed out."""
    if not trial.config.in_order or len(recorder.handed) < trial.batches:
        return
    for k in range(trial.batches):
        indices = recorder.indices_of(k)
        if indices is not None and not trial.n_samples[k]:
            trial.n_samples[k] = len(indices)


@dataclass(frozen=True)
class TorchState:
    """What a trial may disturb in the user's process: the shuffle seeds drawn from torch's
    global RNG, and the intra-op thread count."""

    rng: Any
    threads: int

    @classmethod
    def save(cls) -> TorchState:
        import torch

        return cls(torch.random.get_rng_state(), torch.get_num_threads())

    def restore(self) -> None:
        import torch

        torch.random.set_rng_state(self.rng)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


@dataclass
class _Loop:
    """The measured loop of one trial: ``next()``, the step, four timestamps per batch."""

    trial: Trial
    workload: Workload
    limits: TrialLimits
    clock: Clock
    start: float
    by_budget: bool  # no __len__: the batch budget stands for the epoch
    sampler: MemorySampler

    @property
    def count_samples(self) -> bool:
        """Whether batch sizes must be read off the batches (else the sampler records them:
        it does not for an iterable dataset, which has none)."""
        return self.by_budget or self.workload.is_iterable or not self.trial.config.in_order

    def run(
        self,
        iterator: Any,
        watchdog: guard.Watchdog,
        watch: MemoryWatch,
        shm_total_bytes: int | None = None,
    ) -> None:
        """Consume batches until the epoch ends or the trial has seen enough; stop at once when
        the memory watch says so."""
        step, clock = self.workload.step, self.clock
        last_reset = clock()
        while True:
            if self.trial.batches == self.trial.epoch_batches and not self.by_budget:
                self._sample_memory_untimed()
            requested = clock()
            try:
                item: ProbedBatch = next(iterator)
            except StopIteration:
                self.trial.complete, self.trial.end_s = True, _us(clock() - self.start)
                if self.by_budget:  # the stream ended before the batch budget: a real epoch
                    self.trial.epoch_batches = self.trial.batches
                return
            ready = clock()
            if step is not None:
                _run_step(step, item.batch, self.trial.batches)
            ended = clock()
            self._record(item, requested, ready, ended)
            if watch.stopped is not None:  # the signal was caught by user code, or not sent
                raise MemoryLimitExceeded(watch.stopped)
            if self.trial.batch_bytes is None:
                self._first_batch(item.batch, shm_total_bytes)
            if ended - last_reset > self.limits.timeout_s * WATCHDOG_RESET_SHARE:
                watchdog.reset()
                guard.check_interrupt()
                last_reset = ended
            if self._should_stop(ended - self.start):
                return

    def _sample_memory_untimed(self) -> None:
        """Sample memory while the workers still live (the last ``next()`` stops them), and
        leave the time it took out of the trial's clock: nothing is in flight any more.
        CPU time is read here too, for the same reason."""
        paused = self.clock()
        self.trial.cpu.append((_us(paused - self.start), _cpu_now()))
        self.sampler.sample()
        self.start += self.clock() - paused

    def _first_batch(self, batch: Any, shm_total_bytes: int | None) -> None:
        """Bytes per batch, from the first, and whether the batches in flight fit in /dev/shm."""
        trial, config = self.trial, self.trial.config
        trial.batch_bytes = tensor_bytes(batch)
        if not config.num_workers:
            return
        prefetch = config.in_flight_batches // config.num_workers
        warning = shm_warning(config.num_workers, prefetch, trial.batch_bytes, shm_total_bytes)
        if warning is not None:
            trial.warnings.append(warning)

    def _record(self, item: ProbedBatch, requested: float, ready: float, ended: float) -> None:
        """Four times and the producer, per batch; rounding waits for the end (hot path)."""
        trial, start = self.trial, self.start
        trial.request_s.append(requested - start)
        trial.ready_s.append(ready - start)
        trial.step_end_s.append(ended - start)
        trial.done_s.append(item.done_s - start)
        trial.worker_id.append(item.worker_id)
        trial.n_samples.append(batch_len(item.batch) if self.count_samples else 0)

    def _should_stop(self, elapsed_s: float) -> bool:
        trial = self.trial
        if self.by_budget and trial.batches >= (trial.epoch_batches or 0):
            trial.complete, trial.end_s = True, _us(elapsed_s)  # the budget is its "epoch"
            return True
        steady_s = elapsed_s - trial.ready_s[0]  # startup is paid whatever the budget
        if steady_s < self.limits.budget_s:
            return False
        if trial.batches >= min_batches(trial.config):
            return True
        capped = steady_s >= HARD_CAP_FACTOR * self.limits.budget_s
        return capped and trial.batches >= bare_min_batches(trial.config)


class StepError(Exception):
    """The user's step raised; carries the batch number."""

    def __init__(self, cause: BaseException, batch: int) -> None:
        super().__init__(str(cause))
        self.cause, self.batch = cause, batch


def _run_step(step: Callable[[Any], Any], batch: Any, number: int) -> None:
    try:
        step(batch)
    except TrialTimeout as exc:  # the watchdog fired inside the step: the data is not to blame
        raise TrialTimeout(f"the step did not return: {exc}") from exc
    except (KeyboardInterrupt, MemoryLimitExceeded):
        raise
    except Exception as exc:
        raise StepError(exc, number) from exc


def _us(seconds: float) -> float:
    """Seconds rounded to the microsecond: what the JSON keeps, so figures survive a reload."""
    return round(seconds, 6)


def _cpu_now() -> float:
    return round(tree_cpu_seconds(), 4)


def _warm_startup_s(loader: Any, clock: Clock) -> float:
    """Time to the first batch of a second epoch (persistent workers are already running)."""
    begin = clock()
    iterator = iter(loader)
    next(iterator, None)
    return clock() - begin


def batch_len(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor, found recursively."""
    size = _leading_size(batch)
    return size if size is not None else 1


def _leading_size(obj: Any) -> int | None:
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        for item in obj:
            size = _leading_size(item)
            if size is not None:
                return size
        return len(obj)
    return None


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors (and arrays) in a batch, found recursively through dicts, lists,
    tuples and named tuples; anything else counts 0."""
    return sum(array.nbytes for array in batch_arrays(obj))


def batch_arrays(obj: Any) -> Iterator[Any]:
    """The tensors and arrays (objects with ``shape`` and an integer ``nbytes``) in a batch,
    found recursively through dicts, lists, tuples and named tuples."""
    if isinstance(getattr(obj, "nbytes", None), int) and hasattr(obj, "shape"):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from batch_arrays(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from batch_arrays(item)


@dataclass(frozen=True)
class _Scene:
    """What a failure is explained with, beside the exception and the trial."""

    workload: Workload
    recorder: IndexRecorder
    dead: list[guard.DeadWorker]
    shm_total_bytes: int | None


def _explain(exc: BaseException, trial: Trial, scene: _Scene) -> TrialError:
    from loadertune.core.failures import explain

    return explain(
        exc,
        trial,
        scene.workload,
        scene.recorder,
        dead=scene.dead,
        shm_total_bytes=scene.shm_total_bytes,
    )
