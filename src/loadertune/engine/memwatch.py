"""The memory limit, watched during a trial: a cheap reading every 0.1 s, its growth per batch
extrapolated to the end of the epoch, and PSS read to confirm before a trial is stopped.

Which reading. PSS (or USS) walks ``/proc/<pid>/smaps_rollup``: ~10 ms of CPU per process once
torch is mapped, too dear to repeat inside the timed window (see offline.py). RSS is cheap (~50 us
from ``/proc/<pid>/statm``) but blind to the growth that matters most: the pages a forked worker
shares with the main process already count as resident in the worker, so when touching Python
objects' refcounts copies them (copy-on-read, pytorch#13246) its RSS does not move. The system's
used memory (total - available, ``/proc/meminfo`` via ``psutil.virtual_memory()``) costs ~115 us
and does see it. Measured on this 2-core VM (Linux 6.x, psutil 7.2, torch mapped): a forked child
summing a 3-million-int list it inherited moved system used memory +104.7 MiB, its RSS +0.0 MiB,
its USS +92.0 MiB (and the tree's PSS +92 MiB: +46 in the child, +46 in the parent whose pages
stopped being shared). Reading every 0.1 s costs ~0.1% of one core.

The system figure also moves with every other process (here, with other jobs running: 240 MiB of
range within 20 s, one step of 209 MiB within 0.1 s), and on this VM freed memory comes back
slowly: after a process holding 400 MiB exited, available memory went on rising for 5 s at
~40 MiB/s, so a trial that follows another saw its own growth of 0.6 MiB per batch masked to
0.08. And PSS counts what the system figure cannot see: as
workers start, their share of the libraries they map along with other processes (libtorch)
moves into our tree's PSS; here 0-100 MiB for 2 forked workers, depending on how many other
processes had torch loaded.

So a second cheap reading bounds our own growth from above, whatever other processes do: the
page faults of the main process and its workers (``/proc/<pid>/stat``, ~28 us a process). A
page can join our PSS only through a fault (a copy-on-write copy, a fresh page, a library page
mapped); measured here, the child above faulted 23,540 times, 92.0 MiB, its USS growth exactly.
Batches allocated and freed fault too, so the bound overstates; it only decides when to look.
PSS anchors the figures: read when the limit is within reach of the system figure plus the drift
it may have gathered since the last anchor, or of the fault bound; and when the figure falls
(others freed memory). A trial whose limit stays out of reach pays for no PSS read at all. At
each anchor what the estimate got wrong is counted as other processes' memory and taken out of
the readings since the previous anchor (as a linear drift), so the series agrees with PSS at
every anchor. A trial's memory is therefore PSS before ``iter()`` plus the growth since.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from loadertune.engine.memory import Reader, tree_memory_bytes
from loadertune.records.errors import LoadertuneError
from loadertune.records.units import size

WATCH_INTERVAL_S = 0.1  # a worker growing 1 GiB/s passes the limit by ~100 MiB at most
# Growth below this is not extrapolated: the system figure moves by tens of MiB between readings
# with nothing of ours changing (measured above). A fall below the last high by more than this
# means another process freed memory, and PSS is read again.
GROWTH_NOISE_BYTES = 32 * 2**20
MIN_RATE_BATCHES = 8  # a per-batch rate needs at least this many batches in its window
STARTUP_STOCKS = 2  # the first stocks of batches carry the workers' start-up, not the per-batch
# growth: the slope starts after this many times the batches in flight
# How fast the system figure may drift with nothing of ours changing (measured above: ~40 MiB/s
# for seconds, more in steps): its uncertainty since the last anchor, when judging what is in
# reach. A limit 8 GiB away stays out of reach for two minutes: no PSS read at all.
DRIFT_BYTES_PER_S = 64 * 2**20
# PSS reads use at most this share of one core (a read costs ~10 ms per process with torch
# mapped: with 2 workers one read per 0.3 s at most, with 32 one per 3.3 s) ...
CONFIRM_CPU_SHARE = 0.1
# ... or this much once the figure itself says stop, or while it was found off by more than
# noise: the trial may be about to end, and a read that waits lets the memory run on (seen here:
# +130 MiB during a 1 s wait; reads of 3 processes holding a 400 MB list cost 60 ms).
URGENT_CPU_SHARE = 0.5

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

UsedReader = Callable[[], int]
Progress = Callable[[], int]
Pids = Callable[[], Sequence[int]]
FaultReader = Callable[[int], int | None]


class MemoryLimitExceeded(LoadertuneError):  # noqa: N818 - reads as the event it reports
    """A trial was stopped: its memory crossed the limit, or was heading over it this epoch."""


def system_used_bytes() -> int:
    """Memory in use on the whole machine (total - available), in bytes: the cheap reading."""
    memory = psutil.virtual_memory()
    return int(memory.total - memory.available)


def page_faults(pid: int) -> int | None:
    """Minor plus major page faults of process ``pid`` so far; ``None`` where there is no
    ``/proc/<pid>/stat`` (not Linux, or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return int(fields[7]) + int(fields[9])  # minflt, majflt (after state, ppid, ...)
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Growth:
    """Memory after the start-up: ``per_batch_bytes`` is the slope, ``predicted_bytes`` where
    it leads by the end of the epoch."""

    per_batch_bytes: float
    predicted_bytes: float


def project(points: Sequence[tuple[int, int]], epoch_batches: int, in_flight: int) -> Growth | None:
    """Extrapolate ``(batches consumed, bytes)`` readings to the end of the epoch.

    The slope is a least-squares fit over all the points. Memory now already includes the
    ``in_flight`` batches being produced, so only the batches after those are added. ``None``
    while the growth is within noise or the window is short.

    >>> MiB = 2**20
    >>> growth = project([(1, 0), (9, 64 * MiB), (17, 128 * MiB)], epoch_batches=40, in_flight=3)
    >>> growth.per_batch_bytes / MiB, growth.predicted_bytes / MiB  # 128 + 8 x (40 - 17 - 3)
    (8.0, 288.0)
    """
    if len(points) < 2:
        return None
    (first_batches, first), (batches, now) = points[0], points[-1]
    if now - first < GROWTH_NOISE_BYTES or batches - first_batches < MIN_RATE_BATCHES:
        return None
    slope = max(_slope(points), 0.0)
    remaining = max(epoch_batches - batches - in_flight, 0)
    return Growth(slope, now + slope * remaining)


def _slope(points: Sequence[tuple[int, int]]) -> float:
    n = len(points)
    mean_x = sum(b for b, _ in points) / n
    mean_y = sum(m for _, m in points) / n
    sxx = sum((b - mean_x) ** 2 for b, _ in points)
    sxy = sum((b - mean_x) * (m - mean_y) for b, m in points)
    return sxy / sxx if sxx else 0.0


@dataclass(frozen=True)
class WatchPlan:
    """What the watch compares against: the limit (``None``: record only), the epoch's length
    in batches and the batches the loader keeps in flight."""

    limit_bytes: int | None
    epoch_batches: int
    in_flight: int


class MemoryWatch:
    """Reads memory every ``interval_s`` on a daemon thread while a trial runs; when the memory
    is over ``plan.limit_bytes``, or its growth per batch would carry it over by the end of the
    epoch, and PSS confirms it, calls ``on_stop`` once with a :class:`MemoryLimitExceeded`.

    ``arm()`` takes the baseline (call it before ``iter(loader)``), ``start()`` the thread (after
    ``iter()``, so no thread runs while workers are forked). ``samples`` are
    ``(t, batches consumed, bytes)`` with ``t`` from ``clock``; ``stopped`` is the reason, once.
    """

    def __init__(
        self,
        plan: WatchPlan,
        progress: Progress,
        *,
        interval_s: float = WATCH_INTERVAL_S,
        clock: Callable[[], float] = time.perf_counter,
        used: UsedReader = system_used_bytes,
        confirm: Reader = tree_memory_bytes,
        faults: FaultReader = page_faults,
    ) -> None:
        self.plan = plan
        self.interval_s = interval_s
        self.stopped: str | None = None
        self._progress, self._clock, self._used, self._confirm = progress, clock, used, confirm
        self._faults = faults
        self._pids: Pids = lambda: [os.getpid()]
        self._faults_at_anchor: dict[int, int] = {}
        self._anchor_bytes = 0  # PSS at the last anchor
        self._on_stop: Callable[[MemoryLimitExceeded], object] = lambda _: None
        self._base = self._used_base = self._others = self._high = 0
        self._metric = "pss"
        self._samples: list[tuple[float, int, int]] = []
        self._anchored_at = self._tried_at = self._read_cost_s = 0.0
        self._anchored = False  # whether PSS was read since arm()
        self._misled = False  # whether the last PSS read found the figure off by more than noise
        self._anchor_points: list[tuple[int, int]] = []  # (batches, PSS) after the start-up
        self._settled = False  # whether PSS was read after the workers' start-up
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def samples(self) -> list[tuple[float, int, int]]:
        return list(self._samples)

    def arm(self, base: tuple[int, str] | None) -> None:
        """Take the baseline: ``base`` is the tree's ``(bytes, metric)`` read just now (read
        here if ``None``). Without one the watch records growth from 0 and never stops."""
        if base is None:
            base = self._read_pss()
        if base is None:
            self.plan = WatchPlan(None, self.plan.epoch_batches, self.plan.in_flight)
            base = (0, "pss")
        self._base, self._metric = base
        self._high = self._anchor_bytes = self._base
        self._used_base = self._used()
        self._anchored_at = self._tried_at = self._clock()  # the baseline was an anchor
        self._faults_at_anchor = self._fault_counts()

    def start(
        self, on_stop: Callable[[MemoryLimitExceeded], object], pids: Pids | None = None
    ) -> None:
        """Start watching on a daemon thread; ``on_stop`` is called from that thread, ``pids``
        gives the processes whose page faults bound the growth (default: this one)."""
        self._on_stop = on_stop
        self._pids = pids or self._pids
        self._thread = threading.Thread(target=self._run, name="loadertune-memwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread; later calls do nothing."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> MemoryWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                if self.check() is not None:
                    return
            except psutil.Error:
                continue

    def check(self) -> str | None:
        """One reading and, where due, a PSS anchor and a decision; the reason when it stops
        the trial (``on_stop`` has then been called)."""
        batches, now = self._progress(), self._estimate()
        self._samples.append((self._clock(), batches, now))
        if self.plan.limit_bytes is None or self.stopped is not None:
            return None
        if not self._anchor_due(batches, now):
            self._high = max(self._high, now)
            return None
        if not self._anchor(batches, now):
            return None
        reason = self._verdict(batches)
        if reason is not None:
            self.stopped = reason
            self._on_stop(MemoryLimitExceeded(reason))
        return reason

    def _estimate(self) -> int:
        return self._base + self._used() - self._used_base - self._others

    def _anchor_due(self, batches: int, now: int) -> bool:
        """Read PSS when the figure alone says stop, as often as :data:`URGENT_CPU_SHARE`
        allows; and when the limit is within reach of the figure plus what it may have missed,
        or the figure fell (others freed memory), as often as :data:`CONFIRM_CPU_SHARE` allows,
        or the urgent share while the last read found the figure off by more than noise."""
        t = self._clock()
        since_s = t - self._tried_at
        if since_s < self._read_cost_s / URGENT_CPU_SHARE:
            return False
        growth = self._growth(batches, now)
        if self._crosses(now, growth):
            return True
        if not self._misled and since_s < self._read_cost_s / CONFIRM_CPU_SHARE:
            return False
        slack = round(DRIFT_BYTES_PER_S * (t - self._anchored_at))
        slack = max(slack, self._fault_bound() - now)
        return self._high - now > GROWTH_NOISE_BYTES or self._crosses(now, growth, slack)

    def _crosses(self, now: int, growth: Growth | None, slack: int = 0) -> bool:
        """Whether ``now`` or where ``growth`` leads, plus ``slack``, is over the limit."""
        limit = self.plan.limit_bytes
        if limit is None:
            return False
        heading = growth.predicted_bytes if growth is not None else now
        return max(now, heading) + slack > limit

    def _fault_counts(self) -> dict[int, int]:
        counts = {pid: self._faults(pid) for pid in self._pids()}
        return {pid: n for pid, n in counts.items() if n is not None}

    def _fault_bound(self) -> int:
        """The most our tree can hold now: PSS at the last anchor plus a page per fault since
        (a process started since then counts all its faults)."""
        before = self._faults_at_anchor
        faults = sum(n - before.get(pid, 0) for pid, n in self._fault_counts().items())
        return self._anchor_bytes + faults * PAGE_BYTES

    def _anchor(self, batches: int, estimate: int) -> bool:
        """Read PSS; what the estimate got wrong since the last anchor is others' memory, taken
        out of those readings as a linear drift. False when the read failed."""
        cost_from = time.thread_time()
        read = self._read_pss()
        cost_s = time.thread_time() - cost_from
        t = self._clock()
        self._read_cost_s, self._tried_at = cost_s, t
        if read is None:
            return False
        error = estimate - read[0]
        self._others += error
        self._misled = abs(error) > GROWTH_NOISE_BYTES
        until = t if self._anchored else self._window_start(t)
        self._samples = [_corrected(s, error, self._anchored_at, until) for s in self._samples]
        self._anchored_at, self._high, self._anchored = t, read[0], True
        self._anchor_bytes, self._faults_at_anchor = read[0], self._fault_counts()
        self._settled = self._settled or batches >= STARTUP_STOCKS * self.plan.in_flight
        if self._settled:
            self._anchor_points.append((batches, read[0]))
        return True

    def _window_start(self, default: float) -> float:
        """When the slope's window began. The first anchor's error is put before it: it is
        mostly start-up (PSS counts the workers' share of libraries that other processes map
        too; 0-100 MiB for 2 forked torch workers here), which must not pass for growth."""
        skip = STARTUP_STOCKS * self.plan.in_flight
        return next((t for t, n, _ in self._samples if n >= skip), default)

    def _verdict(self, batches: int) -> str | None:
        """Why the trial must stop after ``batches`` batches, judged on the latest reading."""
        limit, now = self.plan.limit_bytes, self._samples[-1][2]
        if limit is None:
            return None
        if now > limit:
            return (
                f"memory reached {size(now)}, over the {size(limit)} limit "
                f"({self._metric.upper()} of the main process and its workers; "
                f"{size(self._base)} before the loader started)"
            )
        growth = self._growth(batches, now)
        if growth is None or growth.predicted_bytes <= limit:
            return None
        share = batches / max(self.plan.epoch_batches, 1)
        return (
            f"memory grew {_signed(now - self._base)} (to {size(now)}) over the first "
            f"{_percent(share)} of the epoch, {size(growth.per_batch_bytes)} per batch; a full "
            f"epoch would reach ~{size(growth.predicted_bytes)}, over the {size(limit)} limit"
        )

    def _growth(self, batches: int, now: int) -> Growth | None:
        """Where memory is heading: the slope of the readings after the start-up, or of the PSS
        anchors where that is steeper (growth the system figure missed)."""
        skip = STARTUP_STOCKS * self.plan.in_flight
        points = [(n, b) for _, n, b in self._samples if n >= skip]
        anchored = [*self._anchor_points, (batches, now)] if batches >= skip else []
        plan = self.plan
        found = [project(p, plan.epoch_batches, plan.in_flight) for p in (points, anchored)]
        return max((g for g in found if g), key=lambda g: g.predicted_bytes, default=None)

    def _read_pss(self) -> tuple[int, str] | None:
        try:
            return self._confirm()
        except psutil.Error:
            return None


def _corrected(
    sample: tuple[float, int, int], error: int, since: float, until: float
) -> tuple[float, int, int]:
    """``sample`` less the share of ``error`` that built up between ``since`` and its time."""
    t, batches, estimate = sample
    if t <= since:
        return sample
    share = min((t - since) / (until - since), 1.0) if until > since else 1.0
    # a reading up to ``until`` takes its share of a drift that built up steadily; later ones all
    return t, batches, round(estimate - error * share)


def _signed(n: float) -> str:
    return size(n) if n >= 0 else f"-{size(-n)}"


def _percent(share: float) -> str:
    return "<1%" if share < 0.01 else f"{share:.0%}"
