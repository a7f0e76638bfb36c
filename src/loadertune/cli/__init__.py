"""The command line: parse, call the library, render. It measures nothing itself.

One module per command (``bench``, ``tune``, ``profile``, ``check``, ``show``, ``demo``), each
with a ``run(args, command) -> exit code``; :mod:`~loadertune.cli.exits` says what they mean.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loadertune.cli import bench, check, demo, profile, show, tune
from loadertune.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_TRIAL_FAILED, EXIT_USAGE
from loadertune.cli.parser import build_parser
from loadertune.records.errors import UsageError

if TYPE_CHECKING:
    from loadertune.engine.ranks import Ranks

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TRIAL_FAILED", "EXIT_USAGE", "main"]

MEASURING = ("bench", "tune", "profile")
COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "bench": bench.run,
    "tune": tune.run,
    "profile": profile.run,
    "check": check.run,
    "show": show.run,
    "demo": demo.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loadertune`` command; returns the exit code."""
    started = time.perf_counter()  # tune's --budget counts from here: imports included
    args = build_parser().parse_args(argv)
    args.started = started
    command = ["loadertune", *(argv if argv is not None else sys.argv[1:])]
    from loadertune.engine.ranks import RankLostError
    from loadertune.engine.watchdog import interrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        args.ranks = _ranks(args.command)
        return COMMANDS[args.command](args, command)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted", leader_only=True)
        return EXIT_INTERRUPTED
    except RankLostError as exc:
        _error(str(exc), leader_only=True)
        return EXIT_INTERRUPTED
    finally:
        if getattr(args, "ranks", None) is not None:
            args.ranks.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ranks(name: str) -> Ranks | None:
    """Under torchrun with 2+ ranks, the measuring commands run on every rank together."""
    if name not in MEASURING:
        return None
    from loadertune.engine.ranks import from_env

    return from_env()


def _error(message: str, *, leader_only: bool = False) -> None:
    """One line on stderr; under torchrun, rank 0's alone where every rank has the same to say
    (an interrupt), and marked with the rank elsewhere (a usage error may be one rank's)."""
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank and leader_only:
        return
    where = f" (rank {rank})" if rank else ""
    sys.stderr.write(f"loadertune: error{where}: {message}\n")
