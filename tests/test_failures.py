"""Failures explained from the exception and what the runner saw: no worker processes."""

from __future__ import annotations

import signal

import pytest

from loadertune import LoaderConfig, Trial, Workload
from loadertune.engine.backends import DeadWorker
from loadertune.engine.failures import explain
from loadertune.engine.memwatch import MemoryLimitExceeded
from loadertune.engine.probe import IndexRecorder
from sample_data import Rows

MiB = 2**20


def _recorder(batches: int, batch_size: int = 1) -> IndexRecorder:
    recorder = IndexRecorder([])
    for b in range(batches):
        recorder.handed.append(list(range(b * batch_size, (b + 1) * batch_size)))
    return recorder


def _trial(workers: int, batch_bytes: int | None = 4 * MiB, batches: int = 2) -> Trial:
    trial = Trial(LoaderConfig(workers), epoch_batches=100, batch_bytes=batch_bytes)
    trial.ready_s = [0.1 * (i + 1) for i in range(batches)]
    return trial


WORKLOAD = Workload(Rows(16), batch_size=1, shuffle=False)


def test_a_full_dev_shm_raised_in_a_worker_names_the_figures_and_the_fix() -> None:
    exc = RuntimeError(
        "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        "call last):\n  ...\nRuntimeError: unable to write to file </torch_55_1>: No space left "
        "on device (28)\n"
    )
    error = explain(exc, _trial(4), WORKLOAD, _recorder(8), shm_total_bytes=48 * MiB)
    assert error.kind == "shm"
    assert str(error) == (
        "RuntimeError: unable to write to file </torch_55_1>: No space left on device (28): "
        "a full /dev/shm (48 MiB) is the usual cause: batches in flight need ~32 MiB "
        "(4 workers x prefetch_factor 2 x 4 MiB per batch); use fewer workers or a lower "
        "prefetch_factor, or enlarge /dev/shm (docker run --shm-size=1g; on Kubernetes an "
        "emptyDir volume with medium: Memory at /dev/shm) (batch 2)"
    )


def test_a_worker_killed_before_any_batch_still_names_dev_shm() -> None:
    dead = [DeadWorker(0, 123, -signal.SIGBUS, (0,))]
    exc = RuntimeError("DataLoader worker (pid(s) 123) exited unexpectedly")
    error = explain(exc, _trial(2, batch_bytes=None, batches=0), WORKLOAD, _recorder(4), dead=dead)
    assert error.kind == "shm" and (error.index, error.batch) == (0, 0)
    assert str(error).startswith("DataLoader worker 0 (pid 123) was killed by SIGBUS: a full ")


@pytest.mark.parametrize(
    ("exitcode", "expected"),
    [
        (3, "exited with code 3"),
        (-signal.SIGSEGV, "was killed by SIGSEGV"),
        (-99, "was killed by signal 99"),
    ],
)
def test_how_a_worker_ended_is_named(exitcode: int, expected: str) -> None:
    dead = [DeadWorker(1, 77, exitcode, (5,)), DeadWorker(0, 76, exitcode, (6, 8))]
    exc = RuntimeError("DataLoader worker (pid(s) 76, 77) exited unexpectedly")
    error = explain(exc, _trial(2), WORKLOAD, _recorder(10), dead=dead)
    assert error.kind == "worker_died" and (error.index, error.batch) == (5, 5)
    assert str(error).startswith(f"DataLoader worker 1 (pid 77) (and 1 more) {expected}")


def test_a_worker_with_several_batches_names_the_candidates() -> None:
    dead = [DeadWorker(1, 77, 3, (1, 3))]
    exc = RuntimeError("DataLoader worker (pid(s) 77) exited unexpectedly")
    error = explain(exc, _trial(2), WORKLOAD, _recorder(4, batch_size=4), dead=dead)
    expected = "DataLoader worker 1 (pid 77) exited with code 3 while loading batch 1 or 3"
    assert str(error) == expected


def test_a_memory_stop_carries_the_fix_where_workers_copy() -> None:
    exc = MemoryLimitExceeded("memory reached 2 GiB, over the 1.5 GiB limit")
    with_workers = explain(exc, _trial(2), WORKLOAD, _recorder(2))
    assert with_workers.kind == "memory" and "pytorch#13246" in with_workers.message
    assert with_workers.message.startswith("stopped: memory reached 2 GiB, over the")
    alone = explain(exc, _trial(0), WORKLOAD, _recorder(2))
    assert alone.message == "stopped: memory reached 2 GiB, over the 1.5 GiB limit"


def test_a_forked_worker_that_used_cuda_is_named_with_the_fix_and_tune_skips_it() -> None:
    from loadertune.tuning.tune import rejection

    exc = RuntimeError(
        "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        "call last):\n  ...\nRuntimeError: Cannot re-initialize CUDA in forked subprocess. To "
        "use CUDA with multiprocessing, you must use the 'spawn' start method\n"
    )
    trial = _trial(2)
    error = explain(exc, trial, WORKLOAD, _recorder(2))
    assert error.kind == "cuda_fork" and error.batch == 2
    assert "forked workers cannot use CUDA" in error.message
    assert "multiprocessing_context='forkserver'" in error.message
    trial.status, trial.error = "failed", error
    reason = rejection(trial, None)
    assert reason is not None and reason.startswith("skipped: a worker used CUDA")
