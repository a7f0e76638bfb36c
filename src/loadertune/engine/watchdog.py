"""The offline policy's tools for bounding user code in our own process: a no-progress watchdog
on ``SIGALRM``, and the interrupt flag our command's SIGINT/SIGTERM handler sets."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from loadertune.records.errors import TrialTimeout

_interrupt_requested = threading.Event()


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Our command's handler for SIGINT and SIGTERM: remember, then raise KeyboardInterrupt.

    Python ignores an exception raised while ``os.fork`` runs its at-fork handlers (it prints
    "Exception ignored"), which is where Ctrl-C often lands while workers start; the flag lets
    :func:`check_interrupt` raise it again at the next safe point.
    """
    _interrupt_requested.set()
    raise KeyboardInterrupt


def clear_interrupt() -> None:
    """The interrupt was raised and is being handled: forget it."""
    _interrupt_requested.clear()


def interrupt_pending() -> bool:
    """An interrupt arrived and was not handled yet: whatever it set off is not the cause."""
    return _interrupt_requested.is_set()


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
