"""What a trial may do to the process it runs in: two policies.

``OFFLINE`` is our own command's: a no-progress watchdog on ``SIGALRM`` (it also interrupts a
dataset that hangs in the main process), reaping every child process a trial started, garbage
collected before workers are forked, torch's RNG and thread count restored. ``GUEST`` runs
inside somebody else's job (a training loop, a Lightning fit): it takes no signal handler,
stops no process but its own loader's workers (the backend does that), collects no garbage and
restores nothing, because the user's loop owns that state. Neither policy knows a DataLoader:
workers are the backend's (:mod:`loadertune.engine.backends`).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import psutil

from loadertune.engine.heard import hearing
from loadertune.engine.watchdog import (
    Watchdog,
    check_interrupt,
    clear_interrupt,
    interrupt_pending,
)

REAP_GRACE_S = 2.0  # SIGTERM first; a child still alive after this gets SIGKILL


class Watch(Protocol):
    """A no-progress timer: ``reset()`` after progress; ``stop(reason)`` raises ``reason`` in
    the main thread from another thread (False when it cannot: nothing was sent)."""

    armed: bool

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def reset(self) -> None: ...

    def stop(self, reason: BaseException) -> bool: ...


class Harness(Protocol):
    """A policy: the watch a trial runs under, and what is set up and cleaned up around it."""

    @property
    def name(self) -> str: ...

    def watchdog(self, timeout_s: float) -> Watch: ...

    def around(self, *, forks: bool = True) -> contextlib.AbstractContextManager[None]: ...

    def hearing(self) -> contextlib.AbstractContextManager[list[warnings.WarningMessage]]: ...

    def check_interrupt(self) -> None: ...

    def clear_interrupt(self) -> None: ...

    def interrupt_pending(self) -> bool: ...


@dataclass(frozen=True)
class Offline:
    """Our own command: the process is ours, so a trial is bounded and cleaned up by force."""

    name: str = "offline"

    def watchdog(self, timeout_s: float) -> Watch:
        return Watchdog(timeout_s)

    @contextlib.contextmanager
    def around(self, *, forks: bool = True) -> Iterator[None]:
        """Before: one temp folder for all workers, no garbage collection due (where
        ``forks``: workers will be forked). After: every child the trial started reaped,
        torch's state as it was."""
        before = child_pids()
        if forks:
            _before_forking()
        saved = TorchState.save()
        try:
            yield
        finally:
            reap_children(before)
            saved.restore()

    def hearing(self) -> contextlib.AbstractContextManager[list[warnings.WarningMessage]]:
        """The warnings user code raises, kept with the trial (see :mod:`heard`)."""
        return hearing()

    def check_interrupt(self) -> None:
        check_interrupt()

    def clear_interrupt(self) -> None:
        clear_interrupt()

    def interrupt_pending(self) -> bool:
        return interrupt_pending()


@dataclass(frozen=True)
class Guest:
    """Inside the user's process: nothing global taken or changed."""

    name: str = "guest"

    def watchdog(self, timeout_s: float) -> Watch:
        return NoWatch()

    @contextlib.contextmanager
    def around(self, *, forks: bool = True) -> Iterator[None]:
        """Only multiprocessing's own temp folder, made now instead of by the first worker
        that needs it (see :func:`share_temp_dir`): one a killed worker cannot leave behind."""
        share_temp_dir()
        yield

    @contextlib.contextmanager
    def hearing(self) -> Iterator[list[warnings.WarningMessage]]:
        """No warning filter of ours: the user's warnings reach the user as they would."""
        yield []

    def check_interrupt(self) -> None:
        """Ctrl-C reaches the user's loop as it always does: we hold no flag of our own."""

    def clear_interrupt(self) -> None:
        """Nothing to clear: see :meth:`check_interrupt`."""

    def interrupt_pending(self) -> bool:
        return False


OFFLINE = Offline()
GUEST = Guest()


class NoWatch:
    """The guest's watch: never fires, and cannot stop the main thread."""

    armed = False

    def __enter__(self) -> NoWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def reset(self) -> None:
        return None

    def stop(self, reason: BaseException) -> bool:
        return False


def _before_forking() -> None:
    """Untimed, before any worker is forked: one temp folder for all workers, and no garbage
    collection due. A collection falling due while workers are forked writes to every object,
    copying the pages they share: forking 28 workers took 1.3-1.8 s instead of 0.5 s here
    once a few trials' worth of our own objects had piled up (a plain loop did not pay it).
    Only where workers fork: a full collection walks every object and leaves the caches cold
    for the steps after it (the classic example's next steps took 0.70, 0.26 and 0.18 ms
    against 0.09 ms warm: ~1 ms more on a 5 ms epoch than the same epoch timed by hand)."""
    share_temp_dir()
    gc.collect()


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


def share_temp_dir() -> None:
    """Create this process's multiprocessing temp folder now, before any worker is forked.

    A worker that passes a tensor by file descriptor opens a listener socket in its
    multiprocessing temp folder, making a ``pymp-*`` folder of its own if it inherited none;
    a worker we kill (hang, memory limit, Ctrl-C) never removes it. Forked workers inherit
    this process's folder instead, which this process removes when it exits.
    """
    from multiprocessing import util

    util.get_temp_dir()
