"""Turning what user code raised into one clear line that names the cause."""

from __future__ import annotations

import pickle
import re
import signal
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadertune.engine.backends import DeadWorker
from loadertune.engine.harness import OFFLINE, Harness
from loadertune.engine.machine import SHM_WARN_SHARE, shm_fix, shm_in_flight_bytes
from loadertune.engine.memwatch import MemoryLimitExceeded
from loadertune.engine.probe import IndexRecorder
from loadertune.engine.workload import Workload
from loadertune.records.errors import TrialTimeout
from loadertune.records.trial import Trial, TrialError
from loadertune.records.units import size

WORKER_DIED_MARKERS = ("exited unexpectedly", "is killed by signal", "DataLoader worker (pid")
# What torch says when /dev/shm is full: a worker writing a batch raises the first two; one
# touching a shared page past the end of the filesystem dies of SIGBUS ("Bus error").
SHM_MARKERS = ("No space left on device", "unable to allocate shared memory", "Bus error")
MEMORY_FIX = (
    "if the dataset holds Python lists or dicts, every worker copies the objects it reads "
    "(pytorch#13246): keep them in numpy arrays or tensors; fewer workers also use less"
)
CUDA_FORK_MARKER = "Cannot re-initialize CUDA in forked subprocess"  # torch's words
CUDA_FORK_TEXT = (
    "a worker used CUDA, which the main process had initialised before the workers were "
    "forked: forked workers cannot use CUDA; keep CUDA out of the dataset, collate_fn and "
    "worker_init_fn, or use multiprocessing_context='forkserver' (or 'spawn')"
)
PINPOINT_MAX_INDICES = 4096  # re-fetching a failing batch sample by sample is cheap up to this
PINPOINT_TIMEOUT_S = 10.0  # the re-fetch runs user code again; it must not hang the command


class StepError(Exception):
    """The user's step raised; carries the batch number."""

    def __init__(self, cause: BaseException, batch: int) -> None:
        super().__init__(str(cause))
        self.cause, self.batch = cause, batch


def explain(
    exc: BaseException,
    trial: Trial,
    workload: Workload,
    recorder: IndexRecorder,
    *,
    dead: Sequence[DeadWorker] = (),
    shm_total_bytes: int | None = None,
    harness: Harness = OFFLINE,
) -> TrialError:
    """A :class:`TrialError` for ``exc``, raised while fetching or stepping the next batch.
    ``dead`` are the workers found dead as it was raised; ``shm_total_bytes`` the size of
    /dev/shm, named when a full /dev/shm is the likely cause. The failing batch is fetched
    again sample by sample to name the index only where ``harness`` can bound that re-run."""
    if _is_pickling_error(exc):
        return _unpicklable(exc, trial)
    if isinstance(exc, MemoryLimitExceeded | StepError | TrialTimeout):
        return _stopped(exc, trial)
    message = _own_message(exc)
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in WORKER_DIED_MARKERS):
        return _worker_died(message, trial, recorder, dead, shm_total_bytes)
    if any(marker in str(exc) for marker in SHM_MARKERS):
        text = f"{message}: {_shm_text(trial, shm_total_bytes)}"
        return TrialError("shm", text, batch=trial.batches)
    if CUDA_FORK_MARKER in str(exc):  # re-fetching would only raise it again
        return TrialError("cuda_fork", f"{CUDA_FORK_TEXT} ({message})", batch=trial.batches)
    return _blame_index(exc, message, (workload, recorder, harness), trial.batches)


def _unpicklable(exc: BaseException, trial: Trial) -> TrialError:
    method = trial.config.multiprocessing_context or _default_start_method()
    return TrialError(
        "unpicklable",
        f"the dataset, collate_fn or worker_init_fn cannot be sent to {method} workers "
        f"({_own_message(exc)}); define them at module level without lambdas or open "
        "handles, or use the fork start method",
    )


def _stopped(exc: BaseException, trial: Trial) -> TrialError:
    """The trial was stopped on purpose: the memory limit, the user's step, the timeout."""
    if isinstance(exc, StepError):
        return TrialError("step", f"the step raised {_own_message(exc.cause)}", batch=exc.batch)
    if isinstance(exc, MemoryLimitExceeded):
        fix = f"; {MEMORY_FIX}" if trial.config.num_workers else ""
        return TrialError("memory", f"stopped: {exc}{fix}", batch=trial.batches)
    return TrialError("timeout", f"timed out: {exc}", batch=trial.batches)


def _blame_index(
    exc: BaseException,
    message: str,
    scene: tuple[Workload, IndexRecorder, Harness],
    batch: int,
) -> TrialError:
    """The dataset index that raises the same exception again, where one does (re-fetched
    only under a watch that can stop a hang: never in a guest's process)."""
    workload, recorder, harness = scene
    index = None
    try:
        with harness.watchdog(PINPOINT_TIMEOUT_S) as watch:
            if watch.armed:
                index = _pinpoint(workload, recorder.indices_of(batch), type(exc))
    except TrialTimeout:
        pass
    if index is not None:
        return TrialError("exception", _own_message(index[1]), index=index[0], batch=batch)
    return TrialError("exception", f"{message} {_where(exc)}".rstrip(), batch=batch)


def _worker_died(
    message: str,
    trial: Trial,
    recorder: IndexRecorder,
    dead: Sequence[DeadWorker],
    shm_total_bytes: int | None,
) -> TrialError:
    """Which worker died, of what, loading which batch; a bus error blames /dev/shm, SIGKILL
    names the out-of-memory killer that usually sends it."""
    if not dead:
        return TrialError("worker_died", message, batch=trial.batches)
    first = min(dead, key=lambda worker: worker.batches or (trial.batches,))
    others = f" (and {len(dead) - 1} more)" if len(dead) > 1 else ""
    text = f"DataLoader worker {first.worker_id} (pid {first.pid}){others} {_exit_text(first)}"
    index, batch = None, None
    if len(first.batches) == 1:
        batch = first.batches[0]
        indices = recorder.indices_of(batch)
        index = indices[0] if indices is not None and len(indices) == 1 else None
    elif first.batches:
        text += f" while loading {_one_of('batch', first.batches, recorder)}"
    if first.exitcode == -signal.SIGBUS:
        return TrialError("shm", f"{text}: {_shm_text(trial, shm_total_bytes)}", index, batch)
    if first.exitcode == -signal.SIGKILL:
        text += (
            "; SIGKILL is what the kernel's out-of-memory killer sends: check memory "
            "(fewer workers or a lower prefetch_factor use less; so does a memory limit)"
        )
    return TrialError("worker_died", text, index, batch)


def _one_of(noun: str, batches: Sequence[int], recorder: IndexRecorder) -> str:
    """``batch 1 or 3 (index 1 or 3)``: the candidates, with their indices where each batch
    holds one sample."""
    listed = " or ".join(str(b) for b in batches)
    indices = [recorder.indices_of(b) for b in batches]
    if all(found is not None and len(found) == 1 for found in indices):
        listed += " (index " + " or ".join(str(found[0]) for found in indices if found) + ")"
    return f"{noun} {listed}"


def _exit_text(worker: DeadWorker) -> str:
    if worker.exitcode >= 0:
        return f"exited with code {worker.exitcode}"
    try:
        name = signal.Signals(-worker.exitcode).name
    except ValueError:
        name = f"signal {-worker.exitcode}"
    return f"was killed by {name}"


def _shm_text(trial: Trial, shm_total_bytes: int | None) -> str:
    """Why /dev/shm is the likely cause, with the figures we have, and the fix."""
    config, where = trial.config, "/dev/shm"  # noqa: S108 - named in a message, never opened
    shm = f"{where} ({size(shm_total_bytes)})" if shm_total_bytes else where
    if trial.batch_bytes is None or not config.num_workers:
        return f"a full {shm} is the usual cause: {shm_fix(0)}"
    prefetch = config.in_flight_batches // config.num_workers
    in_flight = shm_in_flight_bytes(config.num_workers, prefetch, trial.batch_bytes)
    figures = (
        f"~{size(in_flight)} ({config.num_workers} workers x prefetch_factor {prefetch} x "
        f"{size(trial.batch_bytes)} per batch)"
    )
    if shm_total_bytes and in_flight <= SHM_WARN_SHARE * shm_total_bytes:
        return (
            f"a full {shm} is the usual cause, though batches in flight need only {figures}: "
            f"look for other users of {where}; else {shm_fix(in_flight)}"
        )
    return f"a full {shm} is the usual cause: batches in flight need {figures}; " + shm_fix(
        in_flight
    )


def _default_start_method() -> str:
    import multiprocessing

    return multiprocessing.get_start_method(allow_none=True) or "the default start method's"


def _is_pickling_error(exc: BaseException) -> bool:
    if isinstance(exc, pickle.PicklingError):
        return True
    text = str(exc)
    return isinstance(exc, AttributeError | TypeError) and (
        "pickle" in text.lower() and "Original Traceback" not in text
    )


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, else its type's name (for one-line notices)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _own_message(exc: BaseException) -> str:
    """``Type: message`` as the user's code wrote it, without DataLoader's worker wrapping."""
    text = str(exc)
    if "Original Traceback" in text:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1].strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


_FRAME_LINE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _where(exc: BaseException) -> str:
    """``(in my_collate, data.py:12)``: the innermost frame, for errors no sample explains
    (a collate_fn or worker_init_fn that raises), from a worker's traceback text or our own."""
    frames = _FRAME_LINE.findall(str(exc))
    if frames:
        path, line, func = frames[-1]
    else:
        extracted = traceback.extract_tb(exc.__traceback__)
        if not extracted:
            return ""
        path, line, func = extracted[-1].filename, str(extracted[-1].lineno), extracted[-1].name
    return f"(in {func}, {Path(path).name}:{line})"


def _pinpoint(
    workload: Workload, indices: list[Any] | None, exc_type: type[BaseException]
) -> tuple[Any, BaseException] | None:
    """Re-fetch a failing batch's samples in this process to find the index that raises.

    Only exceptions of the same type count; a batch that loads cleanly sample by sample failed
    elsewhere (collate_fn, worker_init_fn) and no index is named.
    """
    if not indices or len(indices) > PINPOINT_MAX_INDICES:
        return None
    dataset = workload.dataset
    for index in indices:
        try:
            dataset[index]
        except Exception as exc:  # noqa: BLE001 - we are looking for the user's own exception
            if isinstance(exc, exc_type) or "Original Traceback" in str(exc):
                return index, exc
            return None
    return None
