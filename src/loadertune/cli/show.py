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
    result = load_result(args.result)
    render(result, stdout_console())
    write_out(result, args.out)
    return EXIT_OK


def load_result(path: str, flag: str = "") -> Result:
    """A saved result; a missing or foreign file is a usage error naming ``flag`` and ``path``."""
    where = f"{flag} {path}".strip()
    try:
        return Result.load(path)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as exc:  # a folder, no permission
        raise UsageError(f"{where}: cannot read it ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UsageError(f"{where}: not a loadertune result ({exc})") from exc
