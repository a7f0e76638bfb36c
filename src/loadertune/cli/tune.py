"""``loadertune tune``: search the knobs within ``--budget`` and say what the pick gains."""

from __future__ import annotations

import argparse

from loadertune.cli.common import default_max_memory, run_and_render, workload_from_args
from loadertune.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TRIAL_FAILED
from loadertune.cli.outputs import check_paths, json_path
from loadertune.tuning.tune import tune


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Search, print the table, the pick and what it gains; the exit code (1: no pick)."""
    check_paths(args)
    workload = workload_from_args(args)
    result = run_and_render(
        lambda on_trial: tune(
            workload,
            budget_s=args.budget,
            max_workers=args.max_workers,
            max_memory_bytes=args.max_memory or default_max_memory(args),
            strategy=args.strategy,
            trial_timeout_s=args.trial_timeout,
            started=getattr(args, "started", None),
            on_trial=on_trial,
            json_path=json_path(args),
            command=command,
            ranks=getattr(args, "ranks", None),
        ),
        args,
    )
    if result is None:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.best is not None else EXIT_TRIAL_FAILED
