"""The pick: the cheapest config within noise of the fastest, and what it gains. Pure."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from loadertune.records.config import LoaderConfig
from loadertune.records.result import Summary
from loadertune.tuning.history import median_of, planned_median

MIN_NOISE = 0.03  # a challenger must win by more than 3% (pytorch-autotune's floor) ...
# ... or by more than the measured noise: half the median relative range across repeats, or
# for two configs measured side by side in the same rounds, half the range of their ratios.
MIN_PAIRS = 3
SINGLE_RUN_FACTOR = 2  # a figure from one run against a median: the band is the whole range,
# not half of it. The noise is half the range of repeats (a median's uncertainty); one run can
# land anywhere in that range, so it wins or loses only beyond it (on JPEG files a w=2 run
# once beat the w=0 median by 4% with a 3% band, and ran 1.06x slower head to head)


@dataclass(frozen=True)
class Pick:
    """The chosen config, the fastest measured, the noise band and the reason in words."""

    chosen: Summary
    fastest: Summary
    noise: float
    reason: str


def noise_band(summaries: Sequence[Summary]) -> float:
    """Relative noise: half the median (max - min) / median over configs with repeats, >= 3%."""
    spreads = [
        s.planned_s.rel / 2 for s in summaries if s.planned_s is not None and s.planned_s.n > 1
    ]
    measured = statistics.median(spreads) if spreads else 0.0
    return max(MIN_NOISE, measured)


def cost_key(summary: Summary) -> tuple[float, ...]:
    """Cheaper first: fewer workers, then fewer knobs away from the defaults (a knob that wins
    only within noise is not worth the change), then less memory."""
    config = summary.config
    memory = median_of(summary, "peak_memory_bytes") or 0.0
    defaults = LoaderConfig(config.num_workers).to_kwargs()
    extras = sum(1 for k, v in config.to_kwargs().items() if defaults.get(k) != v)
    return (float(config.num_workers), float(extras), memory)


def pick(summaries: Sequence[Summary]) -> Pick | None:
    """Among configs within noise of the fastest, the cheapest; None if none ran."""
    ranked = [s for s in summaries if s.planned_s is not None]
    if not ranked:
        return None
    fastest = min(ranked, key=planned_median)
    noise = noise_band(ranked)
    within = [(s, gap) for s in ranked if (gap := _gap(s, fastest, noise)).within]
    chosen, gap = min(within, key=lambda pair: cost_key(pair[0]))
    return Pick(chosen, fastest, noise, _reason(gap, fastest, noise))


@dataclass(frozen=True)
class Gap:
    """How much slower ``config`` is than the fastest, against which noise, and how measured."""

    config: LoaderConfig
    gap: float
    noise: float
    paired: int  # rounds in which both were measured (0: medians compared)
    once: bool = False  # one side ran once: the band is widened (see SINGLE_RUN_FACTOR)

    @property
    def within(self) -> bool:
        return self.gap <= self.noise


def _gap(summary: Summary, fastest: Summary, noise: float) -> Gap:
    """Where both configs ran the same repeats (measured one after the other in each round),
    the median of their per-round ratios, against the spread of those ratios: the machine's
    drift moves both alike and cancels (here it moved whole epochs by 30% within minutes).
    Otherwise the ratio of medians against the noise of the search."""
    ratios = paired_ratios(summary, fastest)
    if summary.config == fastest.config or len(ratios) < MIN_PAIRS:
        gap = planned_median(summary) / planned_median(fastest) - 1
        once = summary.measured_once or fastest.measured_once
        return Gap(summary.config, gap, SINGLE_RUN_FACTOR * noise if once else noise, 0, once)
    spread = (max(ratios) - min(ratios)) / 2
    return Gap(summary.config, statistics.median(ratios) - 1, max(MIN_NOISE, spread), len(ratios))


def paired_ratios(summary: Summary, other: Summary) -> list[float]:
    """``summary``'s planned time over ``other``'s, repeat by repeat, where both have it."""
    theirs = {t.repeat: t.planned_s(other.epochs) for t in other.ok_trials}
    ratios = []
    for trial in summary.ok_trials:
        mine, base = trial.planned_s(summary.epochs), theirs.get(trial.repeat)
        if mine is not None and base:
            ratios.append(mine / base)
    return ratios


def _reason(chosen: Gap, fastest: Summary, noise: float) -> str:
    if chosen.config == fastest.config:
        return f"fastest measured; no cheaper config within the noise ({noise:.1%})"
    how = f", median of {chosen.paired} side-by-side rounds" if chosen.paired else ""
    how += ", one of them measured once" if chosen.once else ""
    return (
        f"within the noise ({chosen.noise:.1%}) of the fastest, {fastest.config.label()} "
        f"({chosen.gap:+.1%}{how}), and cheaper: picked the fewer workers / less memory"
    )


def speedup(pick: Summary, other: Summary | None) -> float | None:
    """How many times faster the pick is than ``other`` over the planned epochs."""
    if other is None or other.planned_s is None or pick.planned_s is None:
        return None
    return other.planned_s.median / pick.planned_s.median
