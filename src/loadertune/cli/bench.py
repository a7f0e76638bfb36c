"""``loadertune bench``: measure the configs listed on the command line."""

from __future__ import annotations

import argparse

from loadertune.cli.common import measure, trial_limits, workload_from_args
from loadertune.cli.outputs import check_paths
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import UsageError


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Measure one config per ``--workers`` value, ``--repeats`` times each; the exit code."""
    check_paths(args)
    workload = workload_from_args(args)
    own = workload.baseline_config()
    try:
        configs = [config_from_args(n, args, own) for n in args.workers]
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return measure(
        workload, configs, args, command, repeats=args.repeats, limits=trial_limits(args)
    )


def config_from_args(workers: int, args: argparse.Namespace, own: LoaderConfig) -> LoaderConfig:
    """The config for ``workers``: prefetch, persistence and the start method apply where there
    are workers. A DataLoader target's own start method and pin_memory (``own``) are kept unless
    the options say otherwise (its loader may need spawn)."""
    method = args.start_method or own.multiprocessing_context
    return LoaderConfig(
        num_workers=workers,
        prefetch_factor=args.prefetch_factor if workers else None,
        persistent_workers=bool(args.persistent_workers and workers),
        pin_memory=own.pin_memory,
        multiprocessing_context=method if workers else None,
    )
