"""What each CLI command does once its arguments are parsed: build the workload, call the same
public functions a user imports, drive the progress bar, render. Measures nothing itself."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadertune.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_TRIAL_FAILED
from loadertune.core.bench import Interrupted, OnTrial, TrialEvent, bench
from loadertune.core.config import LoaderConfig
from loadertune.core.errors import UsageError
from loadertune.core.result import Result
from loadertune.core.runner import TrialLimits
from loadertune.core.workload import Workload
from loadertune.report.headline import headline_lines
from loadertune.report.table import caption, results_table, title
from loadertune.report.tuning import tuning_lines
from loadertune.report.verdict import advice_lines, verdict_lines, warning_lines


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


def configs_from_args(args: argparse.Namespace, workload: Workload) -> list[LoaderConfig]:
    """One config per --workers value; prefetch, persistence and the start method apply where
    there are workers. A DataLoader target's own start method and pin_memory are kept unless
    the options say otherwise (its loader may need spawn)."""
    own = workload.baseline_config()
    try:
        return [_config(n, args, own) for n in args.workers]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _config(workers: int, args: argparse.Namespace, own: LoaderConfig) -> LoaderConfig:
    method = args.start_method or own.multiprocessing_context
    return LoaderConfig(
        num_workers=workers,
        prefetch_factor=args.prefetch_factor if workers else None,
        persistent_workers=bool(args.persistent_workers and workers),
        pin_memory=own.pin_memory,
        multiprocessing_context=method if workers else None,
    )


def check_json_path(path: str | None) -> None:
    """Refuse a --json path that cannot be written, before anything is measured."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--json {path}: is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot create its folder ({exc.strerror})") from exc
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot write in its folder ({exc.strerror})") from exc


def measure(
    workload: Workload,
    configs: list[LoaderConfig],
    args: argparse.Namespace,
    command: list[str],
    repeats: int | None = None,
) -> int:
    """Run ``bench`` with a progress bar on stderr, print the table on stdout; the exit code."""
    limits = TrialLimits(
        budget_s=getattr(args, "trial_budget", 10.0),
        timeout_s=getattr(args, "trial_timeout", 60.0),
        max_memory_bytes=getattr(args, "max_memory", None) or _default_max_memory(),
    )
    result = _run_and_render(
        lambda on_trial: bench(
            workload,
            configs,
            repeats=repeats or args.repeats,
            limits=limits,
            on_trial=on_trial,
            json_path=json_path(args),
            command=command,
        ),
        args,
    )
    if result is None:
        return EXIT_INTERRUPTED
    return EXIT_TRIAL_FAILED if result.failed_trials or result.best is None else EXIT_OK


def search(workload: Workload, args: argparse.Namespace, command: list[str]) -> int:
    """``tune``: search within the budget, print the table, the pick and what it gains."""
    from loadertune.tuning.tune import tune

    result = _run_and_render(
        lambda on_trial: tune(
            workload,
            budget_s=args.budget,
            max_workers=args.max_workers,
            max_memory_bytes=args.max_memory or _default_max_memory(),
            strategy=args.strategy,
            trial_timeout_s=args.trial_timeout,
            started=getattr(args, "started", None),
            on_trial=on_trial,
            json_path=json_path(args),
            command=command,
        ),
        args,
    )
    if result is None:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.best is not None else EXIT_TRIAL_FAILED


def _run_and_render(run: Callable[[OnTrial], Result], args: argparse.Namespace) -> Result | None:
    """Run with a progress bar, then render and write ``--out``; after Ctrl-C render and write
    what was measured and return None."""
    with _progress() as on_trial:
        try:
            result = run(on_trial)
        except Interrupted as stop:
            render(stop.result, stdout_console())
            write_out(stop.result, getattr(args, "out", None))
            Console(stderr=True).print("[yellow]interrupted[/]: the table shows what was measured")
            return None
    render(result, stdout_console())
    write_out(result, getattr(args, "out", None))
    return result


def json_path(args: argparse.Namespace) -> str | None:
    """Where the result is rewritten after every trial: ``--json``, else ``--out``'s file."""
    out = getattr(args, "out", None)
    return args.json or (str(Path(out) / "result.json") if out else None)


def check_out_dir(path: str | None) -> None:
    """Refuse an ``--out`` folder that cannot be created or written, before measuring."""
    if path is None:
        return
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    check_json_path(str(folder / "result.json"))


def write_out(result: Result, out: str | None) -> None:
    """Write the report files into ``out`` and say where; a missing matplotlib skips the PNGs
    with the command that installs it."""
    if out is None:
        return
    from loadertune.report.files import write_report

    written, skipped = write_report(result, Path(out))
    console = Console(stderr=True)
    console.print(f"wrote {', '.join(p.name for p in written)} to {out}", soft_wrap=True)
    if skipped:
        console.print(f"[yellow]skipped[/] {skipped}", soft_wrap=True)


def show(args: argparse.Namespace) -> int:
    """Render a saved result without measuring (and, with ``--out``, write its report files)."""
    try:
        result = Result.load(args.result)
    except FileNotFoundError:
        raise UsageError(f"{args.result}: no such file") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UsageError(f"{args.result}: not a loadertune result ({exc})") from exc
    render(result, stdout_console())
    write_out(result, args.out)
    return EXIT_OK


def profile_loader(args: argparse.Namespace, command: list[str]) -> int:
    """``profile``: the target's own loader as configured, measured and diagnosed."""
    workload = bench_workload(args)
    return measure(workload, [workload.baseline_config()], args, command)


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


PIPED_WIDTH = 120  # output to a file or pipe is not cut at 80 columns: the table fits whole


def stdout_console() -> Console:
    """The console for results: the terminal's width, or ``PIPED_WIDTH`` when redirected."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def render(result: Result, console: Console) -> None:
    """The table and its legend, the failures with their reasons, then the verdict lines.
    Lines that carry user text (errors, dataset expressions) are printed without markup."""
    console.print(title(result), style="bold", soft_wrap=True, markup=False, emoji=False)
    console.print(results_table(result))
    legend = caption(result)
    if legend:
        console.print(legend, soft_wrap=True, style="dim")
    for trial in result.failed_trials:
        where = f"{trial.config.label()}, repeat {trial.repeat}"
        console.print(f"[red]failed[/] ({where}): {escape(str(trial.error))}", soft_wrap=True)
    lines = tuning_lines(result) or headline_lines(result)
    lines += verdict_lines(result) + advice_lines(result) + warning_lines(result)
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, highlight=False, emoji=False)


@contextmanager
def _progress() -> Iterator[Callable[[TrialEvent], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not Console(stderr=True).is_terminal,
    )
    task = progress.add_task("measuring", total=None)

    def on_trial(event: TrialEvent) -> None:
        label = f"{event.config.label()} (repeat {event.repeat + 1})"
        progress.update(task, total=event.total, completed=event.index + (event.trial is not None))
        progress.update(task, description=f"measuring {label}")

    with progress:
        yield on_trial
