"""The console side of a command: the result rendered as text, and the progress bar. Reads a
result, computes nothing of its own. rich and the renderers are imported when first used, so
``loadertune --help`` does not load them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from loadertune.engine.trials import TrialEvent
    from loadertune.records.result import Result

PIPED_WIDTH = 120  # output to a file or pipe is not cut at 80 columns: the table fits whole


def stdout_console() -> Console:
    """The console for results: the terminal's width, or ``PIPED_WIDTH`` when redirected."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def stderr_console() -> Console:
    """The console for progress and notes, so stdout holds the result alone."""
    from rich.console import Console

    return Console(stderr=True)


def render(result: Result, console: Console) -> None:
    """The table and its legend, the failures with their reasons, then the verdict lines.
    Lines that carry user text (errors, dataset expressions) are printed without markup."""
    from rich.markup import escape

    from loadertune.report.ci import check_lines
    from loadertune.report.headline import headline_lines
    from loadertune.report.ranks import rank_lines
    from loadertune.report.table import caption, results_table, title
    from loadertune.report.tuning import tuning_lines
    from loadertune.report.verdict import advice_lines, verdict_lines, warning_lines

    console.print(title(result), style="bold", soft_wrap=True, markup=False, emoji=False)
    console.print(results_table(result))
    legend = caption(result)
    if legend:
        console.print(legend, soft_wrap=True, style="dim")
    for trial in result.failed_trials:
        where = f"{trial.config.label()}, repeat {trial.repeat}"
        console.print(f"[red]failed[/] ({where}): {escape(str(trial.error))}", soft_wrap=True)
    lines = rank_lines(result) + (tuning_lines(result) or headline_lines(result))
    lines += verdict_lines(result) + advice_lines(result) + warning_lines(result)
    if result.check:  # a saved check's outcomes (the check command prints its own after)
        lines += [f"Warning (baseline): {w}" for w in result.check.get("warnings") or []]
        lines += check_lines(result.check)
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False, emoji=False)


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[TrialEvent], None]]:
    """A progress bar on stderr (none when stderr is not a terminal, or not ``enabled``);
    yields the ``on_trial`` callback that drives it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
        disable=not enabled or not stderr_console().is_terminal,
    )
    task = bar.add_task("measuring", total=None)

    def on_trial(event: TrialEvent) -> None:
        label = f"{event.config.label()} (repeat {event.repeat + 1})"
        bar.update(task, total=event.total, completed=event.index + (event.trial is not None))
        bar.update(task, description=f"measuring {label}")

    with bar:
        yield on_trial
