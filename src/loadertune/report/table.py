"""The results table: one row per config, the fastest marked."""

from __future__ import annotations

from typing import Literal

from rich import box
from rich.table import Table

from loadertune.analysis.verdict import Bottleneck, summary_bottleneck
from loadertune.records import units
from loadertune.records.result import Result, Summary
from loadertune.records.stats import Spread

Justify = Literal["left", "right"]


ONCE_MARK = " x1"


def results_table(result: Result) -> Table:
    """A rich Table of every config: epoch time with spread, samples/s, startup, data wait,
    peak memory; the fastest row marked with ``*``."""
    best = result.best
    epochs = result.epochs
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
        pad_edge=False,
    )
    gpu = on_gpu(result)
    for name, justify in _columns(epochs, epoch_word(result), gpu):
        table.add_column(name, justify=justify, no_wrap=True)
    mark_once = _repeated(result)
    for summary in result.summaries():
        marked = best is not None and summary.config == best.config
        row = _row(summary, marked, epochs, mark_once, gpu)
        table.add_row(*row, style="bold green" if marked else None)
    return table


def caption(result: Result) -> str:
    """The legend under the table; empty when nothing ran."""
    summaries = [s for s in result.summaries() if not s.failed]
    if not summaries:
        return ""
    runs = max(len(s.trials) for s in summaries)
    parts = [f"median of up to {runs} interleaved runs ± half their range"] if runs > 1 else []
    parts.append("* pick" if result.pick is not None else "* fastest")
    if _repeated(result) and any(s.measured_once for s in summaries):
        parts.append(
            f"{ONCE_MARK.strip()} measured once: no spread, so it wins or loses only beyond "
            "twice the noise band"
        )
    if any(not t.epoch_measured for s in summaries for t in s.ok_trials):
        parts.append("~ measured until the trial budget, the rest of the epoch at the steady rate")
    parts.append(
        "steady/s: samples per second once started (- where too few batches came past the "
        "prefetch stock to measure it)"
    )
    if on_gpu(result):
        parts.append("GPU idle: the share of the time the GPU sat idle between steps")
    parts.append("limit: what bounds the config (! highly; see the verdict)")
    return "; ".join(parts)


def on_gpu(result: Result) -> bool:
    """Whether any trial's step ran on a GPU (then the table shows its idle time)."""
    return any(t.device is not None for t in result.trials)


def epoch_word(result: Result) -> str:
    """The unit every time compares: ``epoch`` (a stream that ended counts as one), or
    ``N batches`` for a dataset without length measured over the batch budget."""
    workload = result.workload
    if workload.get("epoch_batches") or workload.get("stream_batches"):
        return "epoch"
    return f"{workload.get('batch_budget')} batches"


def title(result: Result) -> str:
    """What was measured, one line: workload name, batch size, batches per epoch."""
    workload = result.workload
    batches = workload.get("epoch_batches")
    what = f"{batches} batches per epoch"
    if not batches and workload.get("stream_batches"):
        what = f"{workload['stream_batches']} batches per epoch (the stream's length)"
    elif not batches:
        what = f"{workload.get('batch_budget')} batches per run"
    size = workload.get("batch_size")
    batch = f"batch {size}" if size is not None else "batches as the dataset yields them"
    return f"{workload.get('name')}: {batch}, {what}"


def _columns(
    epochs: int, epoch_name: str = "epoch", gpu: bool = False
) -> list[tuple[str, Justify]]:
    columns: list[tuple[str, Justify]] = [("config", "left"), (epoch_name, "right")]
    if epochs > 1:
        columns.append((f"{epochs} epochs", "right"))
    columns += [("steady/s", "right"), ("startup", "right"), ("wait", "right")]
    if gpu:
        columns.append(("GPU idle", "right"))
    columns += [("peak mem", "right"), ("limit", "left")]
    return columns


def _repeated(result: Result) -> bool:
    """Whether any config ran more than once (then those that ran once are marked)."""
    return any(len(s.ok_trials) > 1 for s in result.summaries())


def _row(
    summary: Summary, marked: bool, epochs: int, mark_once: bool = False, gpu: bool = False
) -> list[str]:
    if summary.failed:
        return _failed_row(summary, epochs, gpu)
    estimated = any(not t.epoch_measured for t in summary.ok_trials)
    row = [("* " if marked else "  ") + summary.config.label()]
    if len(summary.ok_trials) < len(summary.trials):
        row[0] += f" ({len(summary.ok_trials)}/{len(summary.trials)} ok)"
    once = ONCE_MARK if mark_once and summary.measured_once else ""
    row.append(units.seconds_spread(summary.epoch_s) + ("~" if estimated else "") + once)
    if epochs > 1:
        row.append(units.seconds(_median_of(summary.planned_s)))
    row += [
        units.rate(_steady(summary)),
        units.seconds(_median(summary, "startup_s")),
        units.percent(_median(summary, "data_wait_fraction")),
    ]
    if gpu:
        row.append(units.percent(_median(summary, "gpu_idle_fraction")))
    row += [units.size(_median(summary, "peak_memory_bytes")), _limit(summary_bottleneck(summary))]
    return row


def _steady(summary: Summary) -> float | None:
    """The steady rate, unless a trial only had the consumer's side to go by with workers
    running: then the prefetch stock drained into it and it would flatter the config."""
    drained = any(t.rate is not None and t.rate.method == "consumption" for t in summary.ok_trials)
    return None if drained and summary.config.num_workers else _median(summary, "samples_per_s")


def _limit(verdict: Bottleneck | None) -> str:
    """The bottleneck, short: ``input!`` highly, ``input`` moderately, else its kind."""
    if verdict is None:
        return "-"
    return verdict.kind + ("!" if verdict.degree == "highly" else "")


def _failed_row(summary: Summary, epochs: int, gpu: bool = False) -> list[str]:
    width = len(_columns(epochs, gpu=gpu))
    return ["! " + summary.config.label(), "failed", *[""] * (width - 2)]


def _median(summary: Summary, name: str) -> float | None:
    return _median_of(summary.figure(name))


def _median_of(value: Spread | None) -> float | None:
    return value.median if value else None
