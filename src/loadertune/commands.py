"""What each CLI command does once its arguments are parsed: build the workload, call the same
public functions a user imports, drive the progress bar, render. Measures nothing itself."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadertune.core.bench import Interrupted, TrialEvent, bench
from loadertune.core.config import LoaderConfig
from loadertune.core.errors import UsageError
from loadertune.core.result import Result
from loadertune.core.runner import TrialLimits
from loadertune.core.workload import Workload
from loadertune.report.headline import headline
from loadertune.report.table import results_table, title
from loadertune.report.tuning import tuning_lines

EXIT_OK, EXIT_TRIAL_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def bench_workload(args: argparse.Namespace) -> Workload:
    """The workload named by TARGET (and --step), with the batch size and epochs asked for."""
    from loadertune.core.targets import load_target, resolve_data, resolve_step

    here = str(Path.cwd())
    if here not in sys.path:  # as `python -m` does: package.module targets from here
        sys.path.insert(0, here)
    data = resolve_data(load_target(args.target), args.target)
    step = resolve_step(load_target(args.step), args.step) if args.step else None
    try:
        return Workload(
            data,
            step=step,
            batch_size=args.batch_size,
            epochs=args.epochs,
            batch_budget=args.batches,
            name=args.target,
        )
    except ValueError as exc:
        raise UsageError(f"{args.target}: {exc}") from exc


def configs_from_args(args: argparse.Namespace) -> list[LoaderConfig]:
    """One config per --workers value; prefetch and persistence apply where there are workers."""
    try:
        return [_config(n, args) for n in args.workers]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _config(workers: int, args: argparse.Namespace) -> LoaderConfig:
    return LoaderConfig(
        num_workers=workers,
        prefetch_factor=args.prefetch_factor if workers else None,
        persistent_workers=bool(args.persistent_workers and workers),
        multiprocessing_context=args.start_method if workers else None,
    )


def measure(
    workload: Workload,
    configs: list[LoaderConfig],
    args: argparse.Namespace,
    command: list[str],
    repeats: int | None = None,
) -> int:
    """Run ``bench`` with a progress bar on stderr, print the table on stdout; the exit code."""
    limits = TrialLimits(
        budget_s=getattr(args, "trial_budget", 10.0), timeout_s=getattr(args, "trial_timeout", 60.0)
    )
    with _progress() as on_trial:
        try:
            result = bench(
                workload,
                configs,
                repeats=repeats or args.repeats,
                limits=limits,
                on_trial=on_trial,
                json_path=args.json,
                command=command,
            )
        except Interrupted as stop:
            render(stop.result, Console())
            Console(stderr=True).print("[yellow]interrupted[/]: the table shows what was measured")
            return EXIT_INTERRUPTED
    render(result, Console())
    return EXIT_TRIAL_FAILED if result.failed_trials or result.best is None else EXIT_OK


def search(workload: Workload, args: argparse.Namespace, command: list[str]) -> int:
    """``tune``: search within the budget, print the table, the pick and what it gains."""
    from loadertune.tuning.tune import tune

    with _progress() as on_trial:
        try:
            result = tune(
                workload,
                budget_s=args.budget,
                max_workers=args.max_workers,
                max_memory_bytes=args.max_memory or _default_max_memory(),
                strategy=args.strategy,
                trial_timeout_s=args.trial_timeout,
                on_trial=on_trial,
                json_path=args.json,
                command=command,
            )
        except Interrupted as stop:
            render(stop.result, Console())
            Console(stderr=True).print("[yellow]interrupted[/]: the table shows what was measured")
            return EXIT_INTERRUPTED
    render(result, Console())
    return EXIT_OK if result.best is not None else EXIT_TRIAL_FAILED


def _default_max_memory() -> int:
    import psutil

    from loadertune.tuning.tune import MEMORY_SHARE

    return int(psutil.virtual_memory().available * MEMORY_SHARE)


def demo(args: argparse.Namespace, command: list[str]) -> int:
    """The classic example at several worker counts, and one sentence on what was found."""
    from loadertune.core.machine import usable_cpus
    from loadertune.demo import DEMO_REPEATS, classic_workload, demo_configs

    args.trial_budget, args.trial_timeout = 10.0, 60.0
    configs = demo_configs(usable_cpus().usable)
    return measure(classic_workload(), configs, args, command, repeats=DEMO_REPEATS)


def render(result: Result, console: Console) -> None:
    """The table, the failures with their reasons, and the headline."""
    console.print(title(result), style="bold", soft_wrap=True)
    console.print(results_table(result))
    for trial in result.failed_trials:
        console.print(
            f"[red]failed[/] {trial.config.label()} (repeat {trial.repeat + 1}): {trial.error}"
        )
    if any(not t.epoch_measured for t in result.trials if t.ok):
        console.print(
            "~ epoch estimated: measured until the trial budget, the rest at the steady rate"
        )
    lines = tuning_lines(result)
    for line in lines or [headline(result)]:
        console.print(line, soft_wrap=True)


@contextmanager
def _progress() -> Iterator[Callable[[TrialEvent], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("measuring", total=None)

    def on_trial(event: TrialEvent) -> None:
        label = f"{event.config.label()} (repeat {event.repeat + 1})"
        progress.update(task, total=event.total, completed=event.index + (event.trial is not None))
        progress.update(task, description=f"measuring {label}")

    with progress:
        yield on_trial
