"""One plain sentence on what a result found, every figure in it measured."""

from __future__ import annotations

from loadertune.records import units
from loadertune.records.result import Result, Summary
from loadertune.report.table import epoch_word


def headline_lines(result: Result) -> list[str]:
    """The headline, then how to build the loader, then a caveat when the fastest two overlap."""
    best = result.best
    if best is None or best.planned_s is None:
        return [headline(result)]
    lines = [headline(result), f"  {best.usage}"]
    runner_up = _runner_up(result, best)
    if runner_up is not None and _overlap(best, runner_up):
        lines.append(
            f"{best.config.label()} and {runner_up.config.label()} overlap within their spread: "
            "rerun with more --repeats to separate them."
        )
    return lines


def headline(result: Result) -> str:
    """The pick, its time, and how the others compare; why, where a measurement says so.

    >>> headline(result)  # doctest: +SKIP
    'Fastest here: num_workers=0, 11.3 ms per epoch. num_workers=2 is 11x slower (126 ms): ...'
    """
    best = result.best
    if best is None or best.epoch_s is None:
        if result.interrupted and not result.trials:
            return "Interrupted before any trial finished: nothing was measured."
        return "No configuration completed; see the errors above."
    unit = _unit(result)
    parts = [f"Fastest here: {_kwargs(best)}, {units.seconds(best.epoch_s.median)} {unit}."]
    others = [s for s in result.summaries() if s.epoch_s is not None and s.config != best.config]
    rule = _one_per_cpu(others, result.cpus_per_rank)
    if rule is not None:
        parts.append(_comparison(best, rule, " (one per CPU, the usual rule)"))
    slowest = max(others, key=_median_epoch, default=None)
    if slowest is not None and slowest is not rule:
        parts.append(_comparison(best, slowest, ""))
    return " ".join(parts)


def _unit(result: Result) -> str:
    return f"per {epoch_word(result)}"


def _runner_up(result: Result, best: Summary) -> Summary | None:
    others = [s for s in result.summaries() if s.planned_s is not None and s.config != best.config]
    return min(others, key=lambda s: s.planned_s.median if s.planned_s else 0.0, default=None)


def _overlap(a: Summary, b: Summary) -> bool:
    sa, sb = a.planned_s, b.planned_s
    if sa is None or sb is None or sa.n < 2 or sb.n < 2:
        return False
    return sa.low <= sb.high and sb.low <= sa.high


def _median_epoch(summary: Summary) -> float:
    return summary.epoch_s.median if summary.epoch_s else 0.0


def _one_per_cpu(others: list[Summary], cpus: int | None) -> Summary | None:
    plain = [s for s in others if s.config.num_workers == cpus and not s.config.persistent_workers]
    return plain[0] if plain else None


def _comparison(best: Summary, other: Summary, note: str) -> str:
    ratio = _median_epoch(other) / _median_epoch(best)
    speed = f"{ratio:.3g}x slower" if ratio >= 1 else f"{1 / ratio:.3g}x faster per epoch"
    text = f"{_kwargs(other)}{note} is {speed} ({units.seconds(_median_epoch(other))})"
    startup = other.figure("startup_s")
    if other.config.num_workers and startup and startup.median > _median_epoch(best):
        text += (
            f": {_workers(other.config.num_workers)} {units.seconds(startup.median)} "
            "to deliver the first batch, longer than a whole epoch of the fastest"
        )
    return text + "."


def _kwargs(summary: Summary) -> str:
    kwargs = summary.config.to_kwargs()
    shown = {k: v for k, v in kwargs.items() if k == "num_workers" or v != _DEFAULTS.get(k)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


_DEFAULTS = {"persistent_workers": False, "pin_memory": False, "prefetch_factor": 2}


def _workers(n: int) -> str:
    return "its worker takes" if n == 1 else f"its {n} workers take"
