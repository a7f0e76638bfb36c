"""Where a result goes besides the console: ``--json`` (rewritten after every trial) and
``--out`` (the report files). Paths are checked before anything is measured."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from loadertune.cli.render import stderr_console
from loadertune.records.errors import UsageError

if TYPE_CHECKING:
    from loadertune.records.result import Result


def check_paths(args: argparse.Namespace) -> None:
    """Refuse unwritable ``--json`` and ``--out`` paths before anything is measured."""
    check_json_path(args.json)
    check_out_dir(args.out)


def check_json_path(path: str | None, flag: str = "--json") -> None:
    """Refuse a file path (``flag``'s) that cannot be written, before anything is measured."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create its folder ({exc.strerror})") from exc
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in its folder ({exc.strerror})") from exc


def check_out_dir(path: str | None) -> None:
    """Refuse an ``--out`` folder that cannot be created or written, before measuring."""
    if path is None:
        return
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    check_json_path(str(folder / "result.json"))


def json_path(args: argparse.Namespace) -> str | None:
    """Where the result is rewritten after every trial: ``--json``, else ``--out``'s file."""
    out = getattr(args, "out", None)
    return args.json or (str(Path(out) / "result.json") if out else None)


def write_out(result: Result, out: str | None) -> None:
    """Write the report files into ``out`` and say where; a missing matplotlib skips the PNGs
    with the command that installs it."""
    if out is None:
        return
    from loadertune.report.files import write_report

    written, skipped = write_report(result, Path(out))
    console = stderr_console()
    console.print(f"wrote {', '.join(p.name for p in written)} to {out}", soft_wrap=True)
    if skipped:
        console.print(f"[yellow]skipped[/] {skipped}", soft_wrap=True)
