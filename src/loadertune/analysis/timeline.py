"""Spans of a trial, lane by lane: when the main loop waited and stepped, when workers loaded.

Pure functions of a :class:`Trial`'s raw stamps (seconds since ``iter(loader)``); no torch.

Main lane: ``start`` is ``0..request_s[0]`` (``iter(loader)`` itself: with workers, starting
them); then per batch k, ``wait`` is ``request_s[k]..ready_s[k]`` (blocked in ``next()``) and
``step`` is ``ready_s[k]..step_end_s[k]`` (the user's step).

Loading, per batch k, ends at ``done_s[k]``, stamped where collation ran. Its start is derived
from stamps, not guessed: a worker makes its batches one after another, so batch k cannot start
before the same worker finished its previous batch, nor before the main process handed its
indices out (``handed_s``). The start is the later of the two. The first batch of each worker
therefore includes the worker's own start-up (process start, imports, ``worker_init_fn``) and
is marked ``with_startup``. With ``in_order=False`` the arrival order says nothing about which
indices a batch got, so ``handed_s`` is not used and each worker's first batch has no known
start: it is left out (see :func:`load_starts`). Without
workers the main process loads inside ``next()``: ``request_s[k]..done_s[k]`` on its own lane,
``main (loading)``, so it never hides the wait it is part of.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from loadertune.records.trial import MAIN_PROCESS

if TYPE_CHECKING:
    from loadertune.records.result import Result
    from loadertune.records.trial import Trial

SpanKind = Literal["start", "wait", "step", "load"]
MAIN = "main"
MAIN_LOADING = "main (loading)"
STAMP_SLACK_S = 2e-6  # stamps are rounded to the microsecond: a handed time may lead by that


@dataclass(frozen=True)
class Span:
    """One stretch of one lane, in seconds since ``iter(loader)``.

    >>> Span("worker 0", "load", 3, 0.010, 0.014).duration_s
    0.004
    """

    lane: str
    kind: SpanKind
    batch: int
    start_s: float
    end_s: float
    with_startup: bool = False  # a worker's first batch: the span includes the worker's start

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 9)


def lane_of(worker_id: int) -> str:
    """The lane where a batch was loaded: ``worker 3``, or ``main (loading)`` for -1."""
    return MAIN_LOADING if worker_id == MAIN_PROCESS else f"worker {worker_id}"


def lane_names(trial: Trial) -> list[str]:
    """Every lane of the trial, top to bottom: the main loop, then where loading ran."""
    if trial.config.num_workers == 0:
        return [MAIN, MAIN_LOADING]
    return [MAIN, *(lane_of(w) for w in range(trial.config.num_workers))]


def window(trial: Trial, max_batches: int = 40, max_s: float | None = None) -> range:
    """The batches to show: from the first, so start-up is visible; at most ``max_batches``,
    and with ``max_s``, only those ready within ``max_s`` seconds after the first (at least
    one batch when there is one).

    >>> window(trial, 40, max_s=2.0)  # doctest: +SKIP
    range(0, 40)
    """
    n = min(trial.batches, max(max_batches, 0))
    if max_s is not None and n:
        n = max(1, bisect.bisect_right(trial.ready_s, trial.ready_s[0] + max_s, 0, n))
    return range(n)


def load_starts(trial: Trial) -> list[float | None]:
    """When loading of each batch began (seconds), or None where the stamps cannot tell.

    With workers: the later of the worker's previous ``done_s`` and the batch's ``handed_s``.
    ``handed_s[j]`` belongs to the j-th batch handed out, which is batch j only with
    ``in_order=True``; with ``in_order=False`` (or no usable ``handed_s``, e.g. an iterable
    dataset) only the worker's previous batch bounds the start: each worker's first batch has
    no start (None), and a later one may include time its worker sat waiting for indices.
    """
    handed = handed_by_batch(trial)
    previous: dict[int, float] = {}
    starts: list[float | None] = [None] * trial.batches
    for k in sorted(range(trial.batches), key=lambda k: trial.done_s[k]):
        worker = trial.worker_id[k]
        if worker == MAIN_PROCESS:
            starts[k] = trial.request_s[k]
            continue
        bounds = [b for b in (previous.get(worker), handed[k] if handed else None) if b is not None]
        starts[k] = max(bounds) if bounds else None
        previous[worker] = trial.done_s[k]
    return starts


def handed_by_batch(trial: Trial) -> list[float] | None:
    """``handed_s`` indexed by batch, where that mapping holds and the stamps agree with it."""
    handed, n = trial.handed_s, trial.batches
    if not trial.config.in_order or len(handed) < n:
        return None
    if any(handed[k] > trial.done_s[k] + STAMP_SLACK_S for k in range(n)):
        return None  # not this epoch's record (e.g. a later epoch re-ran the sampler)
    return [min(handed[k], trial.done_s[k]) for k in range(n)]


def load_spans(trial: Trial) -> list[Span]:
    """Every batch's load span whose start is known (see :func:`load_starts`), in batch order.
    A worker's first batch is marked ``with_startup``: its span includes the worker's start."""
    firsts = _first_of_each_worker(trial)
    return [
        Span(lane_of(trial.worker_id[k]), "load", k, start, trial.done_s[k], k in firsts)
        for k, start in enumerate(load_starts(trial))
        if start is not None
    ]


def _first_of_each_worker(trial: Trial) -> set[int]:
    first: dict[int, int] = {}
    for k in sorted(range(trial.batches), key=lambda k: trial.done_s[k]):
        if trial.worker_id[k] != MAIN_PROCESS:
            first.setdefault(trial.worker_id[k], k)
    return set(first.values())


def spans(trial: Trial, batches: range | None = None) -> list[Span]:
    """The main loop's spans for ``batches`` (default: all; ``start`` before batch 0), and every
    load span that belongs to them or starts before the last of them ends (the prefetching seen
    in that time), sorted by lane and start."""
    batches = range(trial.batches) if batches is None else batches
    if not batches:
        return []
    out = [span for k in batches for span in _main_spans(trial, k)]
    end_s = trial.step_end_s[batches[-1]]
    out += [s for s in load_spans(trial) if s.batch in batches or s.start_s < end_s]
    order = {lane: i for i, lane in enumerate(lane_names(trial))}
    return sorted(out, key=lambda s: (order.get(s.lane, len(order)), s.start_s, s.batch))


def _main_spans(trial: Trial, k: int) -> list[Span]:
    spans = [
        Span(MAIN, "wait", k, trial.request_s[k], trial.ready_s[k]),
        Span(MAIN, "step", k, trial.ready_s[k], trial.step_end_s[k]),
    ]
    if k == 0 and trial.request_s[0] > 0:
        spans.insert(0, Span(MAIN, "start", 0, 0.0, trial.request_s[0]))
    return spans


def make_s(trial: Trial) -> list[float]:
    """How long each batch took to load (seconds), in batch order: from its start (see
    :func:`load_starts`) to ``done_s``; without workers the main process's ``request_s..done_s``.
    Batches whose start is unknown are left out, and so is each worker's first batch, whose
    span includes the worker's own start-up.

    >>> make_s(trial)  # doctest: +SKIP
    [0.064, 0.065, 0.071, ...]
    """
    return [s.duration_s for s in load_spans(trial) if not s.with_startup]


def transfer_s(trial: Trial) -> list[float]:
    """Seconds from a batch being finished (``done_s``) to ``next()`` returning it
    (``ready_s``), for the batches the main loop was already waiting for (``request_s <=
    done_s``), in batch order. That gap is the hand-over: pickling through the result queue,
    the pin-memory thread, unpickling. For batches already waiting in the prefetch stock the
    hand-over is hidden, so they are left out. Without workers it is only the return from
    collate, near zero.
    """
    times = zip(trial.request_s, trial.done_s, trial.ready_s, strict=False)
    return [ready - done for request, done, ready in times if request <= done]


def timeline_trial(result: Result) -> Trial | None:
    """The trial to draw: the best config's successful trial with the median epoch time (the
    lower median for an even count); None if nothing succeeded with a batch."""
    best = result.best
    if best is None:
        return None
    trials = [t for t in best.ok_trials if t.batches]
    timed = sorted((t for t in trials if t.epoch_s is not None), key=lambda t: t.epoch_s or 0.0)
    if timed:
        return timed[(len(timed) - 1) // 2]
    return trials[0] if trials else None
