"""``loadertune show``: render a saved result without measuring; ``--out`` writes its files."""

from __future__ import annotations

import argparse

from loadertune.cli.exits import EXIT_OK
from loadertune.cli.outputs import write_out
from loadertune.cli.render import render, stdout_console
from loadertune.records.errors import UsageError
from loadertune.records.result import Result


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Load ``RESULT.json``, render it, write ``--out``; a missing or foreign file is a usage
    error."""
    try:
        result = Result.load(args.result)
    except FileNotFoundError:
        raise UsageError(f"{args.result}: no such file") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UsageError(f"{args.result}: not a loadertune result ({exc})") from exc
    render(result, stdout_console())
    write_out(result, args.out)
    return EXIT_OK
