"""Pure statistics over a trial's raw samples. No clocks, no torch: easy to property-test.

Times are seconds since the trial started (the moment ``iter(loader)`` was called).

The steady rate is the trap this module exists for. With N workers the loader holds up to
``N x prefetch_factor`` finished batches; a window that drains that stock looks far faster than
the workers really produce. So the rate is measured on the *production* side: every batch carries
the moment its worker finished it, which gives P(t), the number of batches produced by time t.
P(t) is only known up to the last moment at which every batch that could have been produced has
been received, and within that horizon its least-squares slope is the throughput the consumer
will see in the long run (consumption cannot outrun production, and the stock is bounded).
Least squares over a staircase of bursts (workers that finish together) is much less sensitive
to where the window starts and ends than a two-point difference.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

GRID_POINTS = 256  # samples of P(t) for the slope; more adds nothing past the burst structure
SAFETY_BATCHES = (
    2  # a pin-memory thread or an in-flight put can hold a batch or two beyond the stock
)
MIN_WINDOW_BATCHES = 8  # fewer produced batches than this in the window and the slope is noise


@dataclass(frozen=True)
class BatchTimes:
    """Raw per-batch times of one trial, seconds since the trial started.

    ``request_s``: main loop calls ``next()``; ``ready_s``: it returns; ``step_end_s``: the step
    returns; ``done_s``: the producer finished collating it (worker side).
    """

    request_s: Sequence[float]
    ready_s: Sequence[float]
    step_end_s: Sequence[float]
    done_s: Sequence[float]
    n_samples: Sequence[int]

    def __len__(self) -> int:
        return len(self.ready_s)


@dataclass(frozen=True)
class SteadyRate:
    """Throughput in batches/s over ``[start_s, end_s]``, and how it was found."""

    batches_per_s: float
    start_s: float
    end_s: float
    first_batch: int
    method: str  # "production" (stock-corrected) or "consumption" (too few batches to correct)


def safe_horizon(n_received: int, in_flight: int) -> int:
    """Index of the last received batch at whose arrival P(t) is fully known, or -1.

    When batch i is received the loader has handed out indices 0 .. i + in_flight, so every
    batch finished by then has index <= i + in_flight, and is known once it is received.
    """
    return n_received - 1 - in_flight - SAFETY_BATCHES


def steady_rate(times: BatchTimes, in_flight: int) -> SteadyRate | None:
    """The long-run batches/s of a trial, corrected for the prefetch stock.

    Falls back to the consumption rate when too few batches arrived for the correction: a
    trial that ran its whole epoch (its epoch time is measured, the rate is only a figure),
    or a loader without workers (whose stock is one batch).
    """
    horizon = safe_horizon(len(times), in_flight)
    first = min(in_flight, max(horizon // 4, 0))
    if horizon - first >= MIN_WINDOW_BATCHES:
        start, end = times.ready_s[first], times.ready_s[horizon]
        rate = production_slope(times.done_s, start, end)
        if rate is not None and rate > 0:
            return SteadyRate(rate, start, end, first, "production")
    return consumption_rate(times)


def consumption_rate(times: BatchTimes) -> SteadyRate | None:
    """Batches/s over the second half of the received batches (no stock correction)."""
    n = len(times)
    if n < 3:
        return None
    first = n // 2 if n >= 4 else 1
    start, end = times.ready_s[first - 1], times.ready_s[n - 1]
    if end <= start:
        return None
    return SteadyRate((n - first) / (end - start), start, end, first, "consumption")


def production_slope(done_s: Sequence[float], start_s: float, end_s: float) -> float | None:
    """Least-squares slope (batches/s) of P(t) = #{done <= t} on a grid over [start_s, end_s]."""
    if end_s <= start_s:
        return None
    done = sorted(done_s)
    produced = sum(1 for d in done if start_s < d <= end_s)
    if produced < MIN_WINDOW_BATCHES:
        return None
    grid = [start_s + (end_s - start_s) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    counts = _count_at(done, grid)
    return _ls_slope(grid, counts)


def _count_at(sorted_done: Sequence[float], grid: Sequence[float]) -> list[int]:
    counts, j = [], 0
    for t in grid:
        while j < len(sorted_done) and sorted_done[j] <= t:
            j += 1
        counts.append(j)
    return counts


def _ls_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mean_x) ** 2 for x in xs)
    return sxy / sxx


def data_wait_fraction(times: BatchTimes, first_batch: int = 0) -> float | None:
    """Share of the main loop's time spent waiting in ``next()``, from ``first_batch`` on."""
    waits = [
        r - q
        for q, r in zip(times.request_s[first_batch:], times.ready_s[first_batch:], strict=True)
    ]
    totals = [
        e - q
        for q, e in zip(times.request_s[first_batch:], times.step_end_s[first_batch:], strict=True)
    ]
    total = sum(totals)
    return sum(waits) / total if total > 0 else None


def transit_share(times: BatchTimes, first_batch: int = 1) -> float | None:
    """Share of the main loop's waiting spent on batches already made: from the later of the
    request and the producer's stamp to the batch's arrival. High when passing a batch from a
    worker (pickling, shared memory, the queue) costs more than making it, or when saturated
    CPUs delay the hand-over. From ``first_batch`` on (the first batch carries the workers'
    startup); None without any waiting.
    """
    waits = sum(times.ready_s[k] - times.request_s[k] for k in range(first_batch, len(times)))
    transit = sum(_transit(times, k) for k in range(first_batch, len(times)))
    return transit / waits if waits > 0 else None


def transit_per_batch_s(times: BatchTimes, first_batch: int = 1) -> float | None:
    """Mean seconds per batch that the main loop waited for a batch already made."""
    count = len(times) - first_batch
    return (
        sum(_transit(times, k) for k in range(first_batch, len(times))) / count
        if count > 0
        else None
    )


def _transit(times: BatchTimes, k: int) -> float:
    request, ready, done = times.request_s[k], times.ready_s[k], times.done_s[k]
    return max(ready - max(done, request), 0.0)


def mean_batch_samples(times: BatchTimes, first_batch: int = 0) -> float | None:
    """Mean samples per batch from ``first_batch`` on (the last batch may be short)."""
    sizes = times.n_samples[first_batch:] or times.n_samples
    return statistics.fmean(sizes) if sizes else None


def estimate_epoch_s(
    elapsed_s: float, received: int, epoch_batches: int, rate: SteadyRate | None, shutdown_s: float
) -> float | None:
    """Time of a whole epoch from a cut-short one: elapsed, plus the rest at the steady rate.

    ``elapsed_s`` runs from ``iter(loader)`` to the end of the last step measured; ``shutdown_s``
    is what stopping the workers cost (paid at the end of every non-persistent epoch).
    """
    if rate is None:
        return None
    remaining = max(epoch_batches - received, 0)
    return elapsed_s + remaining / rate.batches_per_s + shutdown_s


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated figures; ``rel`` is (max - min) / median."""

    median: float
    low: float
    high: float
    n: int

    @property
    def rel(self) -> float:
        return (self.high - self.low) / self.median if self.median else 0.0


def spread(values: Sequence[float]) -> Spread | None:
    """Median with its range, or None for no values."""
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def gpu_idle_s(starts: Sequence[float], ends: Sequence[float]) -> float:
    """Device seconds between one marked step's end and the next one's start, summed: the
    GPU waiting between steps. Marks are reached in queue order, so a GPU that still works
    on a step reaches the next step's start at once (gap 0), and one starved of input
    reaches it only once the loop has asked for a batch, received it and begun the step."""
    return sum(max(starts[k + 1] - ends[k], 0.0) for k in range(min(len(starts), len(ends)) - 1))


def gpu_idle_fraction(starts: Sequence[float], ends: Sequence[float]) -> float | None:
    """:func:`gpu_idle_s` over the span from the first marked step's start to the last one's
    end; None for fewer than two steps.

    >>> round(gpu_idle_fraction([0.0, 0.004, 0.008], [0.001, 0.005, 0.009]), 3)
    0.667
    """
    if min(len(starts), len(ends)) < 2:
        return None
    span = ends[-1] - starts[0]
    return gpu_idle_s(starts, ends) / span if span > 0 else None


def relative_iqr(values: Sequence[float]) -> float:
    """Interquartile range over the median (inclusive quartiles; 0 for fewer than two values).
    Unlike the full range, one outlier (a cold first run) barely moves it: of five values it
    spans the second to the fourth; of two or three, half the range."""
    if len(values) < 2:
        return 0.0
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    median = statistics.median(values)
    return (high - low) / median if median else 0.0
