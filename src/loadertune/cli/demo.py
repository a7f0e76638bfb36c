"""``loadertune demo``: the classic example at several worker counts, and what was found."""

from __future__ import annotations

import argparse

from loadertune.cli.classic import DEMO_REPEATS, classic_workload, demo_configs
from loadertune.cli.common import default_max_memory, measure
from loadertune.cli.outputs import check_paths
from loadertune.records import defaults
from loadertune.records.limits import TrialLimits


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Measure :func:`demo_configs` on the classic workload at the default trial limits."""
    from loadertune.engine.machine import usable_cpus

    check_paths(args)
    configs = demo_configs(usable_cpus().usable)
    limits = TrialLimits(
        budget_s=defaults.TRIAL_BUDGET_S,
        timeout_s=defaults.TRIAL_TIMEOUT_S,
        max_memory_bytes=default_max_memory(),
    )
    return measure(classic_workload(), configs, args, command, repeats=DEMO_REPEATS, limits=limits)
