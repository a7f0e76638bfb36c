"""How long a trial may run, and how many batches a cut-short trial must see."""

from __future__ import annotations

from dataclasses import dataclass

from loadertune.records import defaults, stats
from loadertune.records.config import LoaderConfig

MIN_WINDOW_ROUNDS = 6  # a cut-short trial measures at least this many prefetch stocks' worth
HARD_CAP_FACTOR = 3.0  # ...but never runs past this many times its budget to get them
MIN_STEADY_BATCHES = 4  # plus these, so a loader without workers still has a window


@dataclass(frozen=True)
class TrialLimits:
    """How long a trial may run: ``budget_s`` after its first batch before cutting the epoch
    short (once enough batches were seen to estimate the rest; never past ``HARD_CAP_FACTOR``
    times the budget), ``timeout_s`` without any batch before failing. With
    ``max_memory_bytes`` a trial is stopped when the memory of the main process and its workers
    passes it, or is heading past it by the end of the epoch (``None``: no limit)."""

    budget_s: float = defaults.TRIAL_BUDGET_S
    timeout_s: float = defaults.TRIAL_TIMEOUT_S
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"trial budget and timeout must be > 0, got {self}")
        if self.max_memory_bytes is not None and self.max_memory_bytes <= 0:
            raise ValueError(f"max_memory_bytes must be > 0, got {self.max_memory_bytes!r}")


def min_batches(config: LoaderConfig) -> int:
    """Batches a cut-short trial should see so the stock-corrected rate has a wide window."""
    return config.in_flight_batches * (MIN_WINDOW_ROUNDS + 1) + MIN_STEADY_BATCHES


def bare_min_batches(config: LoaderConfig) -> int:
    """The fewest batches with which the stock-corrected rate exists at all (see
    :func:`stats.steady_rate`): one stock skipped, one stock beyond the horizon, a window.
    A trial is never cut before this, however long it takes: a rate from fewer batches is a
    guess (a 32-worker epoch cut at 6 batches once estimated 8x its real length)."""
    stock = config.in_flight_batches
    return 2 * stock + stats.SAFETY_BATCHES + stats.MIN_WINDOW_BATCHES + 1


def should_stop(trial_batches: int, config: LoaderConfig, steady_s: float, budget_s: float) -> bool:
    """Whether a trial that has measured ``steady_s`` since its first batch has seen enough:
    its budget spent and the window wide, or three budgets spent and the rate estimable."""
    if steady_s < budget_s:
        return False
    if trial_batches >= min_batches(config):
        return True
    capped = steady_s >= HARD_CAP_FACTOR * budget_s
    return capped and trial_batches >= bare_min_batches(config)
