"""Argument parsing only: the ``loadertune`` parser, its subcommands and argument types. Every
default and every "(default: ...)" in the help is read from :mod:`loadertune.records.defaults`."""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from loadertune.cli.classic import SUMMARY as CLASSIC_SUMMARY
from loadertune.cli.exits import EXIT_USAGE, exit_codes_help
from loadertune.records import defaults

EPILOG = f"""\
TARGET is path/to/file.py:name or package.module:name, where name is a Dataset, a DataLoader,
or a zero-argument callable returning one. A --step target is a function of one batch.

Under torchrun (torchrun --nproc-per-node N -m loadertune tune ...) every local rank measures
at once, rank 0 deciding and printing; torchrun itself exits 1 when any rank exits non-zero.

{exit_codes_help()}"""

# tune's --strategy values and how the help names them; the library maps a name to a class.
_STRATEGIES = {"adaptive": "adaptive", "grid": "the exhaustive grid"}


class _Parser(argparse.ArgumentParser):
    """argparse that exits with one line and code 2, without the usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"loadertune: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser; each subcommand's name is ``args.command``."""
    parser = _Parser(
        prog="loadertune",
        description="Find the fastest PyTorch DataLoader settings by measuring them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_bench(commands)
    _add_tune(commands)
    _add_profile(commands)
    _add_check(commands)
    _add_show(commands)
    _add_demo(commands)
    return parser


def _add_bench(commands: Any) -> None:
    bench = _measuring_command(
        commands,
        "bench",
        "measure the DataLoader configs you list on your dataset and step",
        "Measure each listed DataLoader config on your dataset and training step.",
    )
    workers = ",".join(str(n) for n in defaults.BENCH_WORKERS)
    bench.add_argument(
        "--workers",
        type=_int_list,
        default=list(defaults.BENCH_WORKERS),
        metavar="N,N,...",
        help=f"num_workers values to try (default: {workers})",
    )
    _add_knobs(bench)
    _add_repeats(bench)


def _add_knobs(parser: argparse.ArgumentParser) -> None:
    """The worker knobs besides num_workers, as bench and check take them."""
    parser.add_argument(
        "--prefetch-factor", type=_positive_int, help="prefetch_factor for configs with workers"
    )
    parser.add_argument(
        "--persistent-workers", action="store_true", help="keep workers alive between epochs"
    )
    parser.add_argument(
        "--start-method",
        choices=("fork", "forkserver", "spawn"),
        help="multiprocessing start method for the workers (default: the platform's)",
    )


def _add_repeats(parser: argparse.ArgumentParser, repeats: int = defaults.REPEATS) -> None:
    parser.add_argument(
        "--repeats",
        type=_positive_int,
        default=repeats,
        help=f"interleaved repeats of every config (default: {repeats})",
    )
    parser.add_argument(
        "--trial-budget",
        type=_positive_float,
        default=defaults.TRIAL_BUDGET_S,
        metavar="S",
        help="seconds a trial measures after its first batch; the rest of a longer epoch is "
        f"estimated at the steady rate (default: {defaults.TRIAL_BUDGET_S:g})",
    )


def _measuring_command(
    commands: Any, name: str, summary: str, description: str, epochs: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand that measures a TARGET: the common arguments and the exit-code epilog;
    ``epochs``: what --epochs defaults to, in words, where the command decides it (check)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, epochs)
    return parser


def _add_common(parser: argparse.ArgumentParser, epochs: str | None = None) -> None:
    """Arguments every measuring command takes: the target and how to load it."""
    parser.add_argument("target", metavar="TARGET", help="the Dataset or DataLoader to measure")
    parser.add_argument("--step", metavar="TARGET", help="training step: a function of one batch")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"batch size (default: {defaults.BATCH_SIZE}, or the DataLoader's own)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=defaults.EPOCHS if epochs is None else None,
        help="epochs your job runs; persistent workers start once "
        f"(default: {epochs or defaults.EPOCHS})",
    )
    parser.add_argument(
        "--trial-timeout",
        type=_positive_float,
        default=defaults.TRIAL_TIMEOUT_S,
        metavar="S",
        help=f"fail a trial with no batch for S seconds (default: {defaults.TRIAL_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--batches",
        type=_positive_int,
        default=defaults.BATCH_BUDGET,
        metavar="N",
        help=f"batches measured for a dataset without __len__ (default: {defaults.BATCH_BUDGET})",
    )
    parser.add_argument(
        "--device",
        choices=defaults.DEVICES,
        default=defaults.DEVICE,
        help="where the step runs: on cuda every clock stops after torch.cuda.synchronize() "
        "(never per step) and the GPU's idle time between steps is measured; auto: cuda once "
        f"the step (or its model) has initialised CUDA (default: {defaults.DEVICE})",
    )
    share = f"{defaults.MEMORY_SHARE:.0%}".replace("%", "%%")  # argparse formats help with %
    parser.add_argument(
        "--max-memory",
        type=_size,
        metavar="SIZE",
        help="stop a trial once the memory of the main process and its workers passes SIZE, "
        "or is heading past it by the end of the epoch, e.g. 8G or 512M; tune rejects its "
        f"config (default: {share} of the memory available at the start)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the result document here, after every trial"
    )
    _add_out(parser)


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="write result.json, report.md, timeline.json, throughput.png and timeline.png here",
    )


def _add_tune(commands: Any) -> None:
    tune = _measuring_command(
        commands,
        "tune",
        "search the DataLoader knobs for the fastest config, within a time budget",
        "Search num_workers, prefetch_factor, persistent_workers, start method and in_order on "
        "your dataset and step; pick the cheapest config within noise of the fastest.",
    )
    tune.add_argument(
        "--budget",
        type=_positive_float,
        default=defaults.TUNE_BUDGET_S,
        metavar="S",
        help=f"seconds the whole search may take (default: {defaults.TUNE_BUDGET_S:g})",
    )
    tune.add_argument(
        "--max-workers",
        type=_non_negative_int,
        metavar="N",
        help="never try more workers than N (default: "
        f"max({defaults.MAX_WORKERS_FLOOR}, {defaults.WORKERS_PER_CPU} x usable CPUs))",
    )
    named = (
        f"{text} (default)" if name == defaults.STRATEGY else text
        for name, text in _STRATEGIES.items()
    )
    tune.add_argument(
        "--strategy",
        choices=tuple(_STRATEGIES),
        default=defaults.STRATEGY,
        help=" or ".join(named),
    )


def _add_profile(commands: Any) -> None:
    profile = _measuring_command(
        commands,
        "profile",
        "diagnose one DataLoader as it is configured, without searching",
        "Measure your DataLoader as it is configured (a bare Dataset: num_workers=0) with your "
        "step, and say what limits it, the headroom left and what to change.",
    )
    _add_repeats(profile)


def _add_check(commands: Any) -> None:
    check = _measuring_command(
        commands,
        "check",
        "a CI gate: fail when the loader starves the step or is slower than a baseline",
        "Measure your loader as given (a DataLoader as configured; a Dataset with the knobs "
        "given, or the baseline's pick) with repeats, and fail (exit 1) when the step waits "
        "for data more than --max-wait of the time, or when an epoch is slower than the "
        "baseline's by more than the larger of --tolerance and the noise of both runs.",
        epochs=f"the baseline's, else {defaults.EPOCHS}",
    )
    check.add_argument(
        "--workers", type=_non_negative_int, metavar="N", help="num_workers (default: as given)"
    )
    _add_knobs(check)
    _add_repeats(check, defaults.CHECK_REPEATS)
    check.add_argument(
        "--max-wait",
        type=_wait_share,
        metavar="PCT",
        help="fail when the step waits for data more than PCT of the time, e.g. 20%% or 0.2; "
        f"needs --step (default: {_percent(defaults.MAX_WAIT)} with --step and no --baseline)",
    )
    check.add_argument(
        "--baseline",
        metavar="RESULT.json",
        help="a result any loadertune command wrote (bench, tune, profile, check, an online "
        "loader's): fail when an epoch is slower than the baseline's",
    )
    check.add_argument(
        "--tolerance",
        type=_share,
        default=defaults.CHECK_TOLERANCE,
        metavar="PCT",
        help="how much slower than the baseline passes, at least; the noise of both runs "
        f"widens it (default: {_percent(defaults.CHECK_TOLERANCE)})",
    )
    check.add_argument(
        "--junit", metavar="PATH", help="write a JUnit XML file: one test case per check"
    )


def _percent(fraction: float) -> str:
    """A share in help text (argparse formats help with %, hence %%)."""
    return f"{fraction:.0%}".replace("%", "%%")


def _share(text: str) -> float:
    """``'20%'`` or ``'0.2'`` -> ``0.2``; a bare number above 1 is refused as ambiguous."""
    cleaned = text.strip()
    try:
        value = float(cleaned.removesuffix("%")) / (100 if cleaned.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share like 20% or 0.2, got {text!r}"
        ) from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a share of at least 0, got {text!r}")
    if value > 1 and not cleaned.endswith("%"):
        raise argparse.ArgumentTypeError(f"{text!r} is more than 1: write {text}% or a fraction")
    return value


def _wait_share(text: str) -> float:
    """A share of the time, so at most all of it: a limit past 100% could never fail."""
    value = _share(text)
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than all of the time: give a share up to 100%"
        )
    return value


def _add_show(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="re-render a saved result.json: table, verdict, advice",
        description="Render the table, verdict and advice of a saved result without measuring; "
        "with --out, write its report files again.",
    )
    show.add_argument("result", metavar="RESULT.json", help="a result written by --json or --out")
    _add_out(show)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="measure the classic DataLoader example and say what is fastest here",
        description=f"Measure the classic example ({CLASSIC_SUMMARY}) at several worker counts, "
        "and say what is fastest on this machine.",
    )
    demo.add_argument("--json", metavar="PATH", help="write the result document here")
    _add_out(demo)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _size(text: str) -> int:
    """``'8G'`` -> bytes; K, M, G, T are binary (KiB, MiB, ...); a bare number is bytes."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = cleaned.rstrip("KMGT"), cleaned[len(cleaned.rstrip("KMGT")) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size like 8G or 512M, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return int(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number more than 0, got {text}")
    return value


def _int_list(text: str) -> list[int]:
    """``'0,2,4'`` -> ``[0, 2, 4]``; every item a whole number >= 0."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, like 0,2,4; got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"worker counts must be >= 0, got {text!r}")
    return values


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"loadertune {version('loadertune')}"
    except PackageNotFoundError:
        return "loadertune (not installed)"
