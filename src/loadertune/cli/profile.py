"""``loadertune profile``: the target's own loader as configured, measured and diagnosed."""

from __future__ import annotations

import argparse

from loadertune.cli.common import measure, trial_limits, workload_from_args
from loadertune.cli.outputs import check_paths


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Measure the baseline config alone, ``--repeats`` times; the exit code."""
    check_paths(args)
    workload = workload_from_args(args)
    return measure(
        workload,
        [workload.baseline_config()],
        args,
        command,
        repeats=args.repeats,
        limits=trial_limits(args),
    )
