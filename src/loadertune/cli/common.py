"""What the measuring commands share: the workload a TARGET names, the trial limits, and running
the library with a progress bar, then rendering and writing what it returned."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loadertune.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TRIAL_FAILED
from loadertune.cli.outputs import json_path, write_out
from loadertune.cli.render import progress, render, stderr_console, stdout_console
from loadertune.engine.bench import bench
from loadertune.engine.trials import Interrupted
from loadertune.engine.workload import Workload
from loadertune.records import defaults
from loadertune.records.errors import UsageError
from loadertune.records.limits import TrialLimits

if TYPE_CHECKING:
    from loadertune.engine.trials import TrialEvent
    from loadertune.records.config import LoaderConfig
    from loadertune.records.result import Result

    OnTrial = Callable[[TrialEvent], None]


def workload_from_args(args: argparse.Namespace, dataset_batch_size: int | None = None) -> Workload:
    """The workload named by TARGET (and --step), with the batch size and epochs asked for;
    ``dataset_batch_size`` batches a bare Dataset when --batch-size is not given."""
    from torch.utils.data import DataLoader

    from loadertune.cli.targets import load_target, resolve_data, resolve_step

    here = str(Path.cwd())
    if here not in sys.path:  # as `python -m` does: package.module targets from here
        sys.path.insert(0, here)
    data = resolve_data(load_target(args.target), args.target)
    step = resolve_step(load_target(args.step), args.step) if args.step else None
    batch_size = args.batch_size
    if batch_size is None and not isinstance(data, DataLoader):
        batch_size = dataset_batch_size
    try:
        return Workload(
            data,
            step=step,
            batch_size=batch_size,
            epochs=args.epochs,
            batch_budget=args.batches,
            name=args.target,
            device=args.device,
        )
    except ValueError as exc:
        raise UsageError(f"{args.target}: {exc}") from exc


def default_max_memory(args: argparse.Namespace | None = None) -> int:
    """The memory limit unless ``--max-memory`` says otherwise: a share of what is available
    (divided among the local ranks under torchrun: each one's process tree is held to it)."""
    import psutil

    ranks = getattr(args, "ranks", None)
    local = ranks.local_world_size if ranks is not None else 1
    return int(psutil.virtual_memory().available * defaults.MEMORY_SHARE / max(local, 1))


def leads(args: argparse.Namespace) -> bool:
    """Whether this process prints and writes: always, but for ranks other than 0."""
    ranks = getattr(args, "ranks", None)
    return ranks is None or ranks.leader


def trial_limits(args: argparse.Namespace) -> TrialLimits:
    """``--trial-budget``, ``--trial-timeout`` and ``--max-memory`` (else its default)."""
    return TrialLimits(
        budget_s=args.trial_budget,
        timeout_s=args.trial_timeout,
        max_memory_bytes=args.max_memory or default_max_memory(args),
    )


def measure(
    workload: Workload,
    configs: list[LoaderConfig],
    args: argparse.Namespace,
    command: list[str],
    *,
    repeats: int,
    limits: TrialLimits,
) -> int:
    """Run ``bench`` with a progress bar on stderr, print the table on stdout; the exit code."""
    result = run_and_render(
        lambda on_trial: bench(
            workload,
            configs,
            repeats=repeats,
            limits=limits,
            on_trial=on_trial,
            json_path=json_path(args),
            command=command,
            ranks=getattr(args, "ranks", None),
        ),
        args,
    )
    if result is None:
        return EXIT_INTERRUPTED
    return EXIT_TRIAL_FAILED if result.failed_trials or result.best is None else EXIT_OK


def run_and_render(run: Callable[[OnTrial], Result], args: argparse.Namespace) -> Result | None:
    """Run with a progress bar, then render and write ``--out``; after Ctrl-C render and write
    what was measured and return None. Under torchrun only rank 0 shows and writes."""
    with progress(enabled=leads(args)) as on_trial:
        try:
            result = run(on_trial)
        except Interrupted as stop:
            if leads(args):
                render(stop.result, stdout_console())
                write_out(stop.result, args.out)
                stderr_console().print("[yellow]interrupted[/]: the table shows what was measured")
            return None
    if leads(args):
        render(result, stdout_console())
        write_out(result, args.out)
    return result
