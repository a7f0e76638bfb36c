"""The memory watch against a fake machine: growth extrapolated, noise from other processes
told apart by PSS, the main thread stopped. No worker processes: the runner tests have those."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from loadertune.engine.memwatch import (
    GROWTH_NOISE_BYTES,
    PAGE_BYTES,
    MemoryLimitExceeded,
    MemoryWatch,
    WatchPlan,
    project,
)
from loadertune.engine.watchdog import Watchdog

MiB = 2**20
BASE = 500 * MiB
LIVENESS_S = 30  # a guard so a broken test fails instead of hanging; not a timing claim


class FakeMachine:
    """Our tree's true memory (what PSS reads), other processes' memory, batches consumed and a
    clock that moves 0.1 s per reading."""

    def __init__(self) -> None:
        self.ours, self.others, self.batches, self.t = BASE, 3000 * MiB, 0, 0.0
        self.pss_reads = 0
        self.fault_counts = True

    def used(self) -> int:
        self.t += 0.1
        return self.ours + self.others

    def pss(self) -> tuple[int, str]:
        self.pss_reads += 1
        return self.ours, "pss"

    def faults(self, pid: int) -> int | None:
        """A fault per page we grew by (what copy-on-write and fresh pages cost)."""
        return (self.ours - BASE) // PAGE_BYTES if self.fault_counts else None

    def step(self, batches: int = 1, grow: int = 0, others: int = 0) -> None:
        self.batches += batches
        self.ours += grow
        self.others += others


def watch_on(
    machine: FakeMachine, limit: int | None, epoch: int = 1000, in_flight: int = 4
) -> tuple[MemoryWatch, list[BaseException]]:
    stops: list[BaseException] = []
    watch = MemoryWatch(
        WatchPlan(limit, epoch, in_flight),
        lambda: machine.batches,
        clock=lambda: machine.t,
        used=machine.used,
        confirm=machine.pss,
        faults=machine.faults,
    )
    watch.arm((BASE, "pss"))
    watch._on_stop = stops.append  # as start() would set it, without the thread
    return watch, stops


def run(watch: MemoryWatch, machine: FakeMachine, ticks: int, **step: int) -> str | None:
    """``ticks`` readings, the machine stepping before each; the first stop reason, if any."""
    for _ in range(ticks):
        machine.step(**step)
        reason = watch.check()
        if reason is not None:
            return reason
    return None


def test_project_needs_growth_above_noise_and_a_window() -> None:
    assert project([(8, 0), (100, GROWTH_NOISE_BYTES - 1)], 1000, 4) is None
    assert project([(8, 0), (12, 100 * MiB)], 1000, 4) is None  # 4 batches: too few
    growth = project([(8, 0), (58, 50 * MiB), (108, 100 * MiB)], 1000, 4)
    assert growth is not None
    assert growth.per_batch_bytes == pytest.approx(MiB)
    assert growth.predicted_bytes == pytest.approx(100 * MiB + (1000 - 108 - 4) * MiB)


def test_steady_growth_stops_the_trial_before_it_reaches_the_limit() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=BASE + 400 * MiB)
    reason = run(watch, machine, 500, batches=2, grow=MiB)  # 0.5 MiB per batch: +500 by the end
    assert reason is not None and len(stops) == 1 and isinstance(stops[0], MemoryLimitExceeded)
    assert machine.ours < BASE + 400 * MiB  # stopped before it got there
    assert machine.batches < 400  # well before: at most 40% of the epoch
    assert "per batch; a full epoch would reach ~" in reason and "over the 900 MiB limit" in reason
    assert watch.check() is None and len(stops) == 1  # once only


def test_growth_that_fits_is_watched_without_a_stop() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=BASE + 400 * MiB, epoch=400)
    assert run(watch, machine, 190, batches=2, grow=MiB) is None  # +190 MiB by batch 380
    assert not stops and watch.stopped is None
    assert watch.samples[-1][1:] == (380, BASE + 190 * MiB)


def test_over_the_limit_is_a_stop_even_without_batches() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=BASE + 100 * MiB)
    reason = run(watch, machine, 20, batches=0, grow=20 * MiB)
    assert reason is not None and stops
    assert reason.startswith("memory reached 6")  # 600-620 MiB ...
    assert "over the 600 MiB limit (PSS of the main process and its workers; 500 MiB before" in (
        reason
    )


def test_another_process_allocating_is_no_reason_to_stop() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=BASE + 100 * MiB)
    machine.step(others=2000 * MiB)  # someone else takes 2 GB: the system figure jumps
    assert run(watch, machine, 50, batches=2) is None
    assert not stops and machine.pss_reads >= 1  # PSS was read, and said no
    assert watch.samples[-1][2] == BASE  # the estimate agrees with PSS again


def test_another_process_freeing_memory_does_not_hide_our_growth() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=BASE + 200 * MiB)
    # we grow 1 MiB per batch while others free 1 MiB per reading: the system figure stays flat
    reason = run(watch, machine, 400, batches=1, grow=MiB, others=-MiB)
    assert reason is not None and stops
    assert machine.ours <= BASE + 200 * MiB + 2 * MiB  # stopped at the limit, not far past it


@pytest.mark.parametrize("fault_counts", [True, False])
def test_growth_hidden_by_memory_others_free_is_stopped_at_the_limit(fault_counts: bool) -> None:
    """Others free memory as fast as we take it (this VM hands freed pages back over seconds):
    the system figure stays flat. The page faults bound our growth and bring PSS in time;
    without them, the drift allowance does, later."""
    machine = FakeMachine()
    machine.fault_counts = fault_counts
    watch, stops = watch_on(machine, limit=BASE + 200 * MiB)
    reason = run(watch, machine, 400, batches=1, grow=4 * MiB, others=-4 * MiB)
    assert reason is not None and stops
    overshoot = machine.ours - (BASE + 200 * MiB)
    assert overshoot <= (0 if fault_counts else 100 * MiB)


def test_without_a_limit_nothing_is_read_but_the_cheap_figure() -> None:
    machine = FakeMachine()
    watch, stops = watch_on(machine, limit=None)
    assert run(watch, machine, 200, batches=1, grow=5 * MiB) is None
    assert machine.pss_reads == 0 and not stops
    assert len(watch.samples) == 200
    assert watch.samples[-1][2] == BASE + 1000 * MiB  # the growth is still recorded


def test_a_limit_far_out_of_reach_costs_no_pss_read() -> None:
    machine = FakeMachine()
    watch, _ = watch_on(machine, limit=BASE + 10 * 2**30)
    assert run(watch, machine, 200, batches=1, grow=MiB // 2) is None
    assert machine.pss_reads == 0


def test_the_watch_thread_starts_and_stops() -> None:
    machine = FakeMachine()
    watch, _ = watch_on(machine, limit=None)
    with watch:
        watch.start(lambda _: None)
        deadline = time.monotonic() + LIVENESS_S
        while not watch.samples and time.monotonic() < deadline:
            time.sleep(0.01)
    assert watch.samples
    assert not [t for t in threading.enumerate() if t.name == "loadertune-memwatch"]


def test_watchdog_stop_raises_in_the_main_thread_even_in_a_blocking_wait() -> None:
    waiting: queue.Queue[int] = queue.Queue()
    watchdog = Watchdog(LIVENESS_S)

    def wait_for_nothing() -> None:
        with watchdog:
            threading.Timer(0.05, watchdog.stop, [MemoryLimitExceeded("too much")]).start()
            waiting.get(timeout=LIVENESS_S)  # blocks: nothing is ever put

    with pytest.raises(MemoryLimitExceeded, match="too much"):
        wait_for_nothing()
    assert not watchdog.armed


def test_watchdog_stop_after_exit_sends_nothing() -> None:
    with Watchdog(LIVENESS_S) as watchdog:
        pass
    assert watchdog.stop(MemoryLimitExceeded("late")) is False
    time.sleep(0.01)  # a stray SIGALRM would have ended the process by now


def test_watchdog_off_the_main_thread_does_nothing() -> None:
    results: list[bool] = []

    def body() -> None:
        with Watchdog(LIVENESS_S) as watchdog:
            results.append(watchdog.armed)
            results.append(watchdog.stop(MemoryLimitExceeded("x")))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(LIVENESS_S)
    assert results == [False, False]
