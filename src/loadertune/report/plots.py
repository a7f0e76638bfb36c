"""PNG charts of a result: time by worker count, and one trial's timeline.

matplotlib is optional (``pip install 'loadertune[plot]'``) and imported only here, inside the
functions. Figures are drawn on their own Agg canvas: pyplot and the user's backend are never
touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadertune.analysis import timeline
from loadertune.records import units
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import UsageError
from loadertune.records.result import Result, Summary
from loadertune.records.trial import Trial
from loadertune.report import table

INSTALL = "pip install 'loadertune[plot]'"
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 5.0, 120
LOG_SCALE_RATIO = 20  # beyond this max/min spread a linear axis flattens the fast configs
MEMORY_HEADROOM = 1.15  # the memory axis ends this far above the highest marker
MIB_LIMIT = 4 * 2**30  # memory axis in MiB below this (312 MiB reads better than 0.3 GiB)
VARIANT_STEP = 0.12  # horizontal offset between knob variants at one worker count
TIMELINE_BATCHES = 40  # enough batches to see the rhythm, few enough to see each one
TIMELINE_S = 2.0  # ... or this long after the first batch, whichever is shorter
STYLES: dict[str, dict[str, Any]] = {  # span style -> bar look and legend words
    "start": {"color": "#b0b0b0", "label": "start: iter(loader) (starts any workers)"},
    "wait": {"color": "#d62728", "label": "wait: main loop blocked in next()"},
    "step": {"color": "#1f77b4", "label": "step: your training step"},
    "load": {"color": "#2ca02c", "label": "load: from when the batch could start to collated"},
    "load+start": {
        "color": "#a6d8a6",
        "hatch": "////",
        "label": "load of a worker's first batch, its start-up included",
    },
}
LABEL_MIN_WIDTH = 0.025  # of the x range: narrower bars get no batch number
BASE = "num_workers only"
FAILED_RED = "#d62728"
BESIDE: dict[str, Any] = {"textcoords": "offset points", "ha": "center", "va": "center"}
MEMORY_MARKS: dict[str, Any] = {
    "marker": "D",
    "s": 22,
    "facecolors": "none",
    "edgecolors": "grey",
    "zorder": 2,
}
FAILED_MARK: dict[str, Any] = {
    "marker": "X",
    "s": 80,
    "color": FAILED_RED,
    "zorder": 4,
    "clip_on": False,
}
FAILED_NOTE: dict[str, Any] = {**BESIDE, "xytext": (0, 12), "fontsize": 8, "color": FAILED_RED}
BAR_EDGES: dict[str, Any] = {"edgecolor": "white", "linewidth": 0.4}
PICK_MARK: dict[str, Any] = {
    "marker": "*",
    "s": 420,
    "color": "gold",
    "edgecolors": "black",
    "zorder": 2.5,
}


class PlotUnavailableError(UsageError, ImportError):
    """matplotlib is not installed; the message names the install command."""


def throughput_png(result: Result, path: str | Path) -> Path:
    """Epoch time (median, bars min..max over repeats) by ``num_workers``, peak memory on the
    right axis, the pick starred, failed configs crossed; written to ``path`` as PNG.

    Configs that differ in other knobs at the same worker count are separate series, offset
    a little sideways and named in the legend.

    >>> throughput_png(result, "time.png")  # doctest: +SKIP
    PosixPath('time.png')
    """
    summaries = result.summaries()
    if all(s.failed for s in summaries):  # no time to draw: say so, not an empty frame
        return _save(_nothing_to_draw(result), path)
    figure = _figure(HEIGHT_IN)
    ax = figure.add_subplot()
    where = _x_positions(summaries)
    scale, unit = _time_scale(summaries)
    for name, members in _series(summaries).items():
        _plot_series(ax, name, members, where, scale)
    _plot_memory(ax, summaries, where)
    _mark_failed(ax, summaries, where)
    _mark_pick(ax, result.best, where, scale)
    _label_throughput(ax, result, summaries, unit)
    return _save(figure, path)


def timeline_png(
    result: Result,
    path: str | Path,
    trial: Trial | None = None,
    max_batches: int = TIMELINE_BATCHES,
    max_s: float = TIMELINE_S,
) -> Path:
    """A Gantt chart of ``trial`` (default: the pick's median trial), one row per lane, for
    the first ``max_batches`` batches or ``max_s`` seconds after the first batch; x in ms.

    >>> timeline_png(result, "timeline.png")  # doctest: +SKIP
    PosixPath('timeline.png')
    """
    trial = trial if trial is not None else timeline.timeline_trial(result)
    if trial is None or not trial.batches:
        return _save(_nothing_to_draw(result), path)
    lanes = timeline.lane_names(trial)
    figure = _figure(min(max(HEIGHT_IN, 2.0 + 0.22 * len(lanes)), 9.0))
    ax = figure.add_subplot()
    shown = timeline.window(trial, max_batches, max_s)
    spans = timeline.spans(trial, shown)
    end_s = trial.step_end_s[shown[-1]]
    scale, unit = (1e3, "ms") if end_s >= 2e-3 else (1e6, "µs")
    styles = _draw_lanes(ax, spans, lanes, scale, end_s)
    _label_timeline(ax, result, trial, shown, (end_s, scale, unit))
    _timeline_legend(figure, trial, styles)
    return _save(figure, path)


# -- matplotlib plumbing


def _figure(height_in: float) -> Any:
    """A Figure on its own Agg canvas (pyplot's global state untouched)."""
    try:
        import matplotlib  # noqa: F401 - fails here, clearly, when matplotlib is missing
    except ImportError as exc:
        raise PlotUnavailableError(f"plots need matplotlib: {INSTALL}") from exc
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=DPI, format="png")
    return out


def _nothing_to_draw(result: Result) -> Any:
    figure = _figure(HEIGHT_IN / 2)
    ax = figure.add_subplot()
    ax.set_axis_off()
    name = result.workload.get("name") or "loadertune"
    ax.text(0.5, 0.5, f"{name}: no configuration delivered a batch; nothing to draw", ha="center")
    return figure


# -- time by worker count


def _x_positions(summaries: Sequence[Summary]) -> dict[LoaderConfig, float]:
    """Worker counts as evenly spaced categories (0, 1, 2, 4 ... 32 read better than a log
    axis that cannot show 0); knob variants offset around their count."""
    counts = sorted({s.config.num_workers for s in summaries})
    slot = {count: float(i) for i, count in enumerate(counts)}
    names = list(_series(summaries))
    where = {}
    for s in summaries:
        rank = names.index(_series_name(s.config))
        where[s.config] = slot[s.config.num_workers] + _offset(rank)
    return where


def _offset(rank: int) -> float:
    """0 for the base series, then +1, -1, +2, -2 ... steps."""
    return ((rank + 1) // 2) * VARIANT_STEP * (1 if rank % 2 else -1)


def _series_name(config: LoaderConfig) -> str:
    """The knobs that set a config apart from plain ``num_workers``, as DataLoader keywords,
    e.g. ``persistent_workers=True``; :data:`BASE` for none."""
    plain = LoaderConfig(config.num_workers).to_kwargs()
    own = config.to_kwargs()
    differ = [f"{k}={v}" for k, v in own.items() if k != "num_workers" and plain.get(k) != v]
    return ", ".join(differ) or BASE


def _series(summaries: Sequence[Summary]) -> dict[str, list[Summary]]:
    """Configs grouped by their other knobs; the base series (plain num_workers) first."""
    groups: dict[str, list[Summary]] = {BASE: []}
    for s in sorted(summaries, key=lambda s: s.config.num_workers):
        groups.setdefault(_series_name(s.config), []).append(s)
    return {name: members for name, members in groups.items() if members}


def _time_scale(summaries: Sequence[Summary]) -> tuple[float, str]:
    highs = [s.epoch_s.high for s in summaries if s.epoch_s is not None]
    return (1.0, "s") if highs and max(highs) >= 1.0 else (1e3, "ms")


def _plot_series(
    ax: Any, name: str, members: list[Summary], where: dict[LoaderConfig, float], scale: float
) -> None:
    ran = [s for s in members if s.epoch_s is not None]
    if not ran:
        return
    spreads = [s.epoch_s for s in ran if s.epoch_s is not None]
    medians = [v.median * scale for v in spreads]
    errors = [
        [(v.median - v.low) * scale for v in spreads],
        [(v.high - v.median) * scale for v in spreads],
    ]
    base = name == BASE
    look = (
        {"marker": "o", "linestyle": "-", "linewidth": 2}
        if base
        else {"marker": "s", "linestyle": ":", "linewidth": 1}
    )
    xs = [where[s.config] for s in ran]
    ax.errorbar(xs, medians, yerr=errors, label=name, capsize=3, markersize=6, zorder=3, **look)


def _plot_memory(ax: Any, summaries: Sequence[Summary], where: dict[LoaderConfig, float]) -> None:
    measured = [(s, s.figure("peak_memory_bytes")) for s in summaries]
    points = [(where[s.config], m.median) for s, m in measured if m is not None]
    if not points:
        return
    gib = max(b for _, b in points) >= MIB_LIMIT
    divisor, unit = (2**30, "GiB") if gib else (2**20, "MiB")
    right = ax.twinx()
    xs, ys = [x for x, _ in points], [b / divisor for _, b in points]
    right.scatter(xs, ys, label="peak memory (right axis)", **MEMORY_MARKS)
    metric = _memory_metric(summaries)
    right.set_ylabel(f"peak memory, main + workers ({metric}, {unit})", color="dimgrey")
    right.set_ylim(bottom=0, top=max(ys) * MEMORY_HEADROOM)  # the top marker whole, not cut
    right.tick_params(axis="y", colors="dimgrey")


def _memory_metric(summaries: Sequence[Summary]) -> str:
    trials = [t for s in summaries for t in s.ok_trials]
    return trials[0].memory_metric.upper() if trials else "PSS"


def _mark_failed(ax: Any, summaries: Sequence[Summary], where: dict[LoaderConfig, float]) -> None:
    """A red cross on the x axis (not a time) for each config that never ran, "failed" above."""
    failed = [s for s in summaries if s.failed]
    if not failed:
        return
    at_foot = ax.get_xaxis_transform()  # x in data, y in axes fraction
    xs = [where[s.config] for s in failed]
    ax.scatter(xs, [0.0] * len(xs), transform=at_foot, label="failed (no time)", **FAILED_MARK)
    for x in xs:
        ax.annotate("failed", (x, 0.0), xycoords=at_foot, **FAILED_NOTE)


def _mark_pick(
    ax: Any, best: Summary | None, where: dict[LoaderConfig, float], scale: float
) -> None:
    """A star behind the pick's own marker (which stays visible), "pick" beside it, and the
    config and its time in the legend."""
    if best is None or best.epoch_s is None:
        return
    x, y = where[best.config], best.epoch_s.median * scale
    label = f"pick: {best.config.label()}, {units.seconds(best.epoch_s.median)}"
    ax.scatter([x], [y], label=label, **PICK_MARK)
    ax.annotate("pick", (x, y), xytext=(-24, 0), **BESIDE, fontsize=9, fontweight="bold")


def _label_throughput(ax: Any, result: Result, summaries: Sequence[Summary], unit: str) -> None:
    counts = sorted({s.config.num_workers for s in summaries})
    ax.set_xticks(range(len(counts)), [str(c) for c in counts])
    ax.set_xlim(-0.5, len(counts) - 0.5)
    ax.set_xlabel("num_workers")
    word = table.epoch_word(result)
    ax.set_ylabel(f"time per {word} ({unit})\nmedian, bars: min to max over repeats")
    lows = [s.epoch_s.low for s in summaries if s.epoch_s is not None and s.epoch_s.low > 0]
    highs = [s.epoch_s.high for s in summaries if s.epoch_s is not None]
    if lows and max(highs) / min(lows) > LOG_SCALE_RATIO:
        _log_axis(ax)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Time per {word} by num_workers: {table.title(result)}")
    _legend(ax)


def _log_axis(ax: Any) -> None:
    """Log scale with plain numbers at 1-2-5 steps (not 10^0, 10^1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(ax.get_ylabel() + " (log scale)")


def _legend(ax: Any) -> None:
    """One legend for both axes (the memory markers live on the twin), under the plot where
    it hides no point."""
    handles, labels = [], []
    for axis in (ax, *ax.get_shared_x_axes().get_siblings(ax)):
        h, lab = axis.get_legend_handles_labels()
        for handle, label in zip(h, lab, strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    ax.figure.legend(
        handles, labels, loc="outside lower center", ncols=4, fontsize=8, markerscale=0.7
    )


# -- timeline


def _draw_lanes(
    ax: Any, spans: list[timeline.Span], lanes: list[str], scale: float, end_s: float
) -> list[str]:
    """Bars lane by lane (main on top), numbered where wide enough; the styles used."""
    row = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for span in spans:
        bar = (span.start_s * scale, span.duration_s * scale)
        groups.setdefault((span.lane, _style(span)), []).append(bar)
        if span.kind == "load" and span.duration_s >= LABEL_MIN_WIDTH * end_s:
            _number(ax, span, row[span.lane], scale, end_s)
    for (lane, style), bars in groups.items():
        look = STYLES[style]
        height = (row[lane] - 0.38, 0.76)
        ax.broken_barh(bars, height, facecolors=look["color"], hatch=look.get("hatch"), **BAR_EDGES)
    ax.set_yticks([row[lane] for lane in lanes], [_lane_label(lane) for lane in lanes])
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    return [style for style in STYLES if any(s == style for _, s in groups)]


def _style(span: timeline.Span) -> str:
    return "load+start" if span.with_startup else span.kind


def _number(ax: Any, span: timeline.Span, row: int, scale: float, end_s: float) -> None:
    """The batch number in the middle of the visible part of its bar."""
    middle = (span.start_s + min(span.end_s, end_s)) / 2 * scale
    color = "black" if span.with_startup else "white"
    ax.text(middle, row, str(span.batch), ha="center", va="center", fontsize=7, color=color)


def _lane_label(lane: str) -> str:
    return "main loop" if lane == timeline.MAIN else lane


def _label_timeline(
    ax: Any, result: Result, trial: Trial, shown: range, axis: tuple[float, float, str]
) -> None:
    end_s, scale, unit = axis
    first_s = trial.ready_s[0] * scale
    ax.axvline(first_s, color="black", linestyle="--", linewidth=0.8)
    ax.annotate(
        " first batch", (first_s, 1.0), xycoords=("data", "axes fraction"), va="bottom", fontsize=8
    )
    ax.set_xlim(0, end_s * scale * 1.01)
    ax.set_xlabel(f"time since iter(loader) ({unit})")
    ax.grid(axis="x", alpha=0.3)
    name = result.workload.get("name") or "loadertune"
    status = "" if trial.ok else f", {trial.status}"
    ax.set_title(
        f"{name}: {trial.config.label()} (repeat {trial.repeat}{status}), "
        f"batches 0-{shown[-1]} of {trial.batches}",
        pad=14,
    )


def _timeline_legend(figure: Any, trial: Trial, styles: list[str]) -> None:
    from matplotlib.patches import Patch

    looks = [STYLES[s] for s in styles]
    handles = [
        Patch(facecolor=v["color"], hatch=v.get("hatch"), label=v["label"], **BAR_EDGES)
        for v in looks
    ]
    note = ""
    if trial.config.num_workers and timeline.handed_by_batch(trial) is None:
        why = "in_order=False" if not trial.config.in_order else "no usable sampler record"
        note = f"{why}: when a worker got its indices is unknown, so its first batch is not "
        note += "drawn and a load may include time it waited for work"
    legend = {"loc": "outside lower center", "ncols": 3, "fontsize": 8, "title_fontsize": 8}
    figure.legend(handles=handles, title=note or None, **legend)
