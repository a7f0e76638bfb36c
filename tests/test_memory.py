"""Tree memory of this process and its children, and the background sampler."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from loadertune.engine.memory import MemorySampler, tree_memory_bytes

CHILD_BYTES = 200 * 2**20
MIN_GROWTH_BYTES = 150 * 2**20
LIVENESS_S = 60  # a generous guard so a broken test fails instead of hanging; not a timing claim


def hold_memory(size: int, ready: Any, release: Any) -> None:
    """Child body: allocate and touch ``size`` bytes, say so, hold them until released."""
    block = b"\x01" * size  # filled, so every page is really resident
    ready.set()
    release.wait(LIVENESS_S)
    del block


@pytest.fixture
def child_holding_memory() -> Iterator[Any]:
    """A child process holding CHILD_BYTES; the test sets ``.release`` to let it exit."""
    ctx = multiprocessing.get_context()
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=hold_memory, args=(CHILD_BYTES, ready, release), daemon=True)
    child.start()
    child.release = release  # type: ignore[attr-defined]
    try:
        assert ready.wait(LIVENESS_S), "child never allocated its memory"
        yield child
    finally:
        release.set()
        child.join(LIVENESS_S)
        if child.is_alive():
            child.kill()
            child.join()
    assert not child.is_alive()
    assert child.pid not in {p.pid for p in psutil.Process().children(recursive=True)}


def test_tree_memory_of_this_process() -> None:
    total, metric = tree_memory_bytes()
    assert total > 0
    assert metric == ("pss" if sys.platform.startswith("linux") else metric)
    assert metric in ("pss", "uss", "rss")


def test_tree_memory_counts_a_child(child_holding_memory: Any) -> None:
    child_total, _ = tree_memory_bytes(child_holding_memory.pid)
    assert child_total >= MIN_GROWTH_BYTES
    with_child, _ = tree_memory_bytes()
    child_holding_memory.release.set()
    child_holding_memory.join(LIVENESS_S)
    without_child, _ = tree_memory_bytes()
    assert with_child - without_child >= MIN_GROWTH_BYTES


def test_tree_memory_of_a_missing_pid_raises() -> None:
    child = multiprocessing.get_context().Process(target=int)
    child.start()
    child.join()
    with pytest.raises(psutil.NoSuchProcess):
        tree_memory_bytes(child.pid)


def test_sampler_sees_a_child_start() -> None:
    ctx = multiprocessing.get_context()
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=hold_memory, args=(CHILD_BYTES, ready, release), daemon=True)
    try:
        with MemorySampler(interval_s=0.05) as sampler:
            child.start()
            assert ready.wait(LIVENESS_S)
        # The last sample is taken at stop, while the child still holds its block.
        samples = sampler.samples
        assert len(samples) >= 2
        assert samples[-1][1] - samples[0][1] >= MIN_GROWTH_BYTES
        assert sampler.peak_bytes == max(size for _, size in samples)
        assert sampler.metric in ("pss", "uss", "rss")
    finally:
        release.set()
        child.join(LIVENESS_S)
    assert not child.is_alive()


class FakeReader:
    """Returns 100, 200, 300, ... bytes; sets ``called`` once it has been read ``wanted`` times."""

    def __init__(self, wanted: int = 1) -> None:
        self.calls = 0
        self.wanted = wanted
        self.called = threading.Event()

    def __call__(self) -> tuple[int, str]:
        self.calls += 1
        if self.calls >= self.wanted:
            self.called.set()
        return 100 * self.calls, "uss"


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "loadertune-memory"]


def test_sampler_short_trial_has_two_samples_and_stops_its_thread() -> None:
    clock = itertools.count(10.0)
    with MemorySampler(interval_s=60, clock=lambda: next(clock), read=FakeReader()) as sampler:
        assert sampler_threads()
    assert sampler.samples == [(10.0, 100), (11.0, 200)]
    assert (sampler.metric, sampler.peak_bytes) == ("uss", 200)
    assert not sampler_threads()


def test_sampler_samples_in_the_background() -> None:
    reader = FakeReader(wanted=5)
    with MemorySampler(interval_s=0.001, read=reader) as sampler:
        assert reader.called.wait(LIVENESS_S)
    times = [t for t, _ in sampler.samples]
    assert len(times) >= 6
    assert times == sorted(times)


def test_expensive_reads_stretch_the_wait() -> None:
    # Each read "costs" 1000 CPU seconds, so a 1% budget means waiting ~27 hours between reads:
    # only the start and stop samples happen, however long the body runs.
    cpu = itertools.count(0.0, 1000.0)
    reader = FakeReader()
    with MemorySampler(interval_s=0.001, cpu_clock=lambda: next(cpu), read=reader):
        time.sleep(0.1)
    assert reader.calls == 2


def test_failed_reads_are_skipped() -> None:
    def vanished() -> tuple[int, str]:
        raise psutil.NoSuchProcess(pid=1)

    with MemorySampler(read=vanished) as sampler:
        pass
    assert (sampler.samples, sampler.metric, sampler.peak_bytes) == ([], "", None)


def test_sampler_stops_when_the_body_raises() -> None:
    with pytest.raises(KeyError), MemorySampler(interval_s=0.001, read=FakeReader()):
        raise KeyError("boom")
    assert not sampler_threads()


def test_stop_is_idempotent_and_start_is_once() -> None:
    sampler = MemorySampler(read=FakeReader())
    sampler.stop()  # never started: nothing to do
    assert sampler.samples == []
    sampler.start()
    with pytest.raises(RuntimeError, match="twice"):
        sampler.start()
    sampler.stop()
    sampler.stop()
    assert len(sampler.samples) == 2


@pytest.mark.parametrize(("interval_s", "cpu_budget"), [(0, 0.01), (-1, 0.01), (0.1, 0), (0.1, 2)])
def test_bad_settings_are_rejected(interval_s: float, cpu_budget: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        MemorySampler(interval_s, cpu_budget=cpu_budget)
