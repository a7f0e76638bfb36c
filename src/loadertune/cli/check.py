"""``loadertune check``: the CI gate. It measures the loader as given, with repeats, applies the
rules of :mod:`loadertune.analysis.gate`, prints each check with its reason and writes
``--junit`` and ``--json``; exit 0 when every check passed, 1 when one failed."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadertune.cli.common import run_and_render, trial_limits, workload_from_args
from loadertune.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TRIAL_FAILED
from loadertune.cli.outputs import check_json_path, check_paths, json_path
from loadertune.cli.render import stderr_console, stdout_console
from loadertune.cli.show import load_result
from loadertune.engine import neighbours
from loadertune.records import defaults
from loadertune.records.config import LoaderConfig
from loadertune.records.errors import UsageError

if TYPE_CHECKING:
    from loadertune.analysis.gate import Check
    from loadertune.engine.workload import Workload
    from loadertune.records.result import Result


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Measure, apply the rules, report; the exit code."""
    from loadertune.analysis.gate import baseline_warnings, gate

    check_paths(args)
    check_json_path(args.junit, "--junit")
    baseline = load_baseline(args.baseline) if args.baseline else None
    max_wait = max_wait_of(args, baseline)
    if args.epochs is None:  # the job the baseline was measured for
        args.epochs = baseline.epochs if baseline is not None else defaults.EPOCHS
    workload = workload_from_args(args, _batch_size(baseline))
    before = neighbours.sample()
    result = measure(workload, checked_config(args, workload, baseline), args, command)
    if result is None:
        return EXIT_INTERRUPTED
    others = neighbours.others_cpus(before, neighbours.sample())
    checks = gate(result, baseline, max_wait=max_wait, tolerance=args.tolerance)
    warnings = baseline_warnings(result, baseline) if baseline is not None else []
    busy = neighbours.contention_warning(others, result.usable_cpus)
    warnings += [busy] if busy else []
    result.check = {**_record(args, max_wait, checks, warnings), "others_cpus": others}
    _write(result, checks, warnings, args)
    _show(result.check, checks)
    return EXIT_OK if all(c.passed for c in checks) else EXIT_TRIAL_FAILED


def measure(
    workload: Workload, config: LoaderConfig, args: argparse.Namespace, command: list[str]
) -> Result | None:
    """``config`` repeated after the warm-up, in this process, undiagnosed; rendered. None
    after Ctrl-C (what was measured is shown and kept)."""
    from loadertune.engine.bench import bench

    return run_and_render(
        lambda on_trial: bench(
            workload,
            [config],
            repeats=args.repeats,
            limits=trial_limits(args),
            on_trial=on_trial,
            json_path=json_path(args),
            command=command,
            diagnose=False,
            ranks=None,
        ),
        args,
    )


def load_baseline(path: str) -> Result:
    """The baseline result; one in which no config ran is a usage error."""
    baseline = load_result(path, "--baseline")
    if not any(not s.failed for s in baseline.summaries()):
        raise UsageError(f"--baseline {path}: no config ran in it, there is nothing to compare")
    return baseline


def max_wait_of(args: argparse.Namespace, baseline: Result | None) -> float | None:
    """The wait rule's limit: --max-wait, else the default when there is no baseline; it
    needs a step (without one the loop only waits for data)."""
    given: float | None = args.max_wait
    if args.step is None:
        if given is not None:
            raise UsageError("--max-wait needs --step: without a step the loop only waits")
        if baseline is None:
            raise UsageError(
                "nothing to check: give --step (the data-wait rule) or --baseline (the "
                "regression rule)"
            )
        return None
    return defaults.MAX_WAIT if given is None and baseline is None else given


def checked_config(
    args: argparse.Namespace, workload: Workload, baseline: Result | None
) -> LoaderConfig:
    """What is measured: a DataLoader as configured, a Dataset at the baseline's pick (else
    without workers), then the knobs given on the command line."""
    from torch.utils.data import DataLoader

    start = workload.baseline_config()
    if baseline is not None and not isinstance(workload.data, DataLoader):
        start = _pick(baseline)
    try:
        return with_knobs(start, args)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def with_knobs(start: LoaderConfig, args: argparse.Namespace) -> LoaderConfig:
    """``start`` with --workers, --prefetch-factor, --persistent-workers and --start-method;
    at 0 workers the knobs only workers have are dropped unless given."""
    workers = start.num_workers if args.workers is None else args.workers
    changes: dict[str, Any] = {"num_workers": workers}
    if not workers:
        changes.update(prefetch_factor=None, persistent_workers=False, multiprocessing_context=None)
    if args.prefetch_factor is not None:
        changes["prefetch_factor"] = args.prefetch_factor
    if args.persistent_workers:
        changes["persistent_workers"] = True
    if args.start_method:
        changes["multiprocessing_context"] = args.start_method
    return replace(start, **changes)


def _pick(baseline: Result) -> LoaderConfig:
    best = baseline.best or next(s for s in baseline.summaries() if not s.failed)
    return best.config


def _batch_size(baseline: Result | None) -> int | None:
    size = (baseline.workload.get("batch_size") if baseline is not None else None) or None
    return size if isinstance(size, int) else None


def _record(
    args: argparse.Namespace, max_wait: float | None, checks: list[Check], warnings: list[str]
) -> dict[str, Any]:
    return {
        "passed": all(c.passed for c in checks),
        "max_wait": max_wait,
        "tolerance": args.tolerance if args.baseline else None,
        "baseline": args.baseline,
        "warnings": warnings,
        "checks": [c.to_dict() for c in checks],
    }


def _write(
    result: Result, checks: list[Check], warnings: list[str], args: argparse.Namespace
) -> None:
    """--json (again, now with the checks) and --junit."""
    from loadertune.analysis.document import save, write_atomic
    from loadertune.report.ci import junit_xml

    path = json_path(args)
    if path is not None:
        save(result, path)
    if args.junit:
        write_atomic(Path(args.junit), junit_xml(checks, args.target, warnings))


def _show(check: dict[str, Any], checks: list[Check]) -> None:
    """Each check with its reason on stdout; warnings on stderr; under GitHub Actions, the
    failures and warnings again as workflow commands (annotations)."""
    from rich.markup import escape

    from loadertune.report.ci import check_lines, workflow_commands

    errors = stderr_console()
    for warning in check["warnings"]:
        errors.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True)
    console = stdout_console()
    for line in check_lines(check):
        style = "red" if line.startswith(("FAIL", "loadertune check failed")) else None
        console.print(line, style=style, soft_wrap=True, markup=False, highlight=False)
    if os.environ.get("GITHUB_ACTIONS"):
        sys.stdout.flush()
        for line in workflow_commands(checks, check["warnings"]):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
