"""Keeping user code in bounds: a no-progress watchdog, and no worker left behind."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import psutil

from loadertune.core.errors import TrialTimeout

REAP_GRACE_S = 2.0  # SIGTERM first; a worker still alive after this gets SIGKILL

_interrupt_requested = threading.Event()


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Signal handler for SIGINT and SIGTERM: remember, then raise KeyboardInterrupt.

    Python ignores an exception raised while ``os.fork`` runs its at-fork handlers (it prints
    "Exception ignored"), which is where Ctrl-C often lands while workers start; the flag lets
    :func:`check_interrupt` raise it again at the next safe point.
    """
    _interrupt_requested.set()
    raise KeyboardInterrupt


def clear_interrupt() -> None:
    """The interrupt was raised and is being handled: forget it."""
    _interrupt_requested.clear()


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if an interrupt arrived and was swallowed."""
    if _interrupt_requested.is_set():
        _interrupt_requested.clear()
        raise KeyboardInterrupt


class Watchdog:
    """Raises :class:`TrialTimeout` in the main thread when ``reset()`` is not called in time,
    or any exception another thread hands to :meth:`stop`.

    Uses ``SIGALRM`` so it also interrupts a dataset that hangs in the main process
    (``num_workers=0``) in Python code or a blocking call. Off the main thread, or where the
    platform has no ``setitimer``, it does nothing (``armed`` is False).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.armed = False
        self._previous: Any = None
        self._reason: BaseException | None = None
        self._lock = threading.Lock()  # stop() never signals a main thread that disarmed

    def __enter__(self) -> Watchdog:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            self.armed = True
            self.reset()
        return self

    def reset(self) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, self.timeout_s)

    def stop(self, reason: BaseException) -> bool:
        """From another thread: raise ``reason`` in the main thread now, even in a blocking
        wait (a ``SIGALRM`` sent to it). False when not armed: nothing was sent."""
        with self._lock:
            if not self.armed or not hasattr(signal, "pthread_kill"):
                return False
            self._reason = reason
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGALRM)
            return True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            if self.armed:
                self.armed = False  # first: a SIGALRM still on its way is ignored by _fire ...
                signal.setitimer(signal.ITIMER_REAL, 0)  # ... delivered at this call's return
                signal.signal(signal.SIGALRM, self._previous)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            return
        reason, self._reason = self._reason, None
        if reason is not None:
            raise reason
        raise TrialTimeout(f"no batch for {self.timeout_s:g} s")


def child_pids() -> set[int]:
    """PIDs of this process's living descendants."""
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process().children(recursive=True)}
    return set()


def _multiprocessing_helpers() -> set[int]:
    """The forkserver and resource-tracker processes: shared by design, reused across trials."""
    from multiprocessing import forkserver, resource_tracker

    helpers: list[tuple[Any, str]] = [
        (forkserver, "_forkserver._forkserver_pid"),
        (resource_tracker, "_resource_tracker._pid"),
    ]
    pids = set()
    for module, path in helpers:
        owner_name, attr = path.split(".")
        pid = getattr(getattr(module, owner_name, None), attr, None)
        if isinstance(pid, int) and pid > 0:
            pids.add(pid)
    return pids


def reap_children(before: set[int]) -> list[int]:
    """Terminate, then kill, descendants that were not alive in ``before``; return their PIDs."""
    spare = before | _multiprocessing_helpers()
    leftovers = []
    with contextlib.suppress(psutil.Error):
        leftovers = [p for p in psutil.Process().children(recursive=True) if p.pid not in spare]
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=REAP_GRACE_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=REAP_GRACE_S)
    return [p.pid for p in leftovers]


def shutdown_iterator(iterator: Any, *, kill_first: bool = False) -> float:
    """Stop a DataLoader iterator's workers and pin-memory thread; return the seconds it took.

    ``kill_first`` (after a failure) terminates the workers before the orderly shutdown, which
    would otherwise wait several seconds on a worker that hangs.
    """
    start = time.perf_counter()
    if kill_first:
        for worker in getattr(iterator, "_workers", []):
            with contextlib.suppress(Exception):
                worker.terminate()
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()
    return time.perf_counter() - start


@dataclass(frozen=True)
class DeadWorker:
    """A DataLoader worker that ended on its own: ``exitcode`` as multiprocessing gives it
    (negative: killed by that signal), and the batches it had been given and not yet returned
    to the main loop (it died loading one of them; the others may wait unread in the queue)."""

    worker_id: int
    pid: int | None
    exitcode: int
    batches: tuple[int, ...]


def dead_workers(iterator: Any) -> list[DeadWorker]:
    """Workers of a DataLoader iterator that have exited, each with its unreturned batches."""
    tasks = getattr(iterator, "_task_info", {})
    dead = []
    for worker_id, worker in enumerate(getattr(iterator, "_workers", [])):
        with contextlib.suppress(Exception):
            code = worker.exitcode
            if code is None:
                continue
            pending = [i for i, info in tasks.items() if len(info) == 1 and info[0] == worker_id]
            dead.append(DeadWorker(worker_id, worker.pid, code, tuple(sorted(pending))))
    return dead


def share_temp_dir() -> None:
    """Create this process's multiprocessing temp folder now, before any worker is forked.

    A worker that passes a tensor by file descriptor opens a listener socket in its
    multiprocessing temp folder, making a ``pymp-*`` folder of its own if it inherited none;
    a worker we kill (hang, memory limit, Ctrl-C) never removes it. Forked workers inherit
    this process's folder instead, which this process removes when it exits.
    """
    from multiprocessing import util

    util.get_temp_dir()
