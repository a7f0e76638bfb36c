"""Warnings raised in our process while a trial runs (by the user's code or a library it uses,
such as torchdata's deprecation notices): kept with the trial and shown once, labelled with
where they came from, instead of landing unlabelled among our own output."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

from loadertune.records.errors import LoadertuneWarning

# DataLoader's warning when asked for more workers than CPUs: trying that is our job
MORE_WORKERS_THAN_CPUS = ".*worker processes in total"


@contextlib.contextmanager
def hearing() -> Iterator[list[warnings.WarningMessage]]:
    """Record the warnings raised inside, except DataLoader's own about more workers than
    CPUs (trying that is our job) and its hint on a pickling failure (the trial's error
    explains it, see failures.py). The filters in force outside still decide the rest."""
    with warnings.catch_warnings(record=True) as heard:
        warnings.filterwarnings("ignore", message=MORE_WORKERS_THAN_CPUS, category=UserWarning)
        warnings.filterwarnings("ignore", message="Got pickle error", category=UserWarning)
        yield heard


def labelled(heard: list[warnings.WarningMessage]) -> list[str]:
    """Each distinct warning once, naming its kind and the file and line that raised it; our
    own warnings are raised again as they were."""
    lines: list[str] = []
    for record in heard:
        if issubclass(record.category, LoadertuneWarning):
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
            continue
        where = f"{Path(record.filename).parent.name}/{Path(record.filename).name}"
        line = (
            f"{record.category.__name__} raised in your code or a library it uses "
            f"({where}:{record.lineno}), not by loadertune: {record.message}"
        )
        if line not in lines:
            lines.append(line)
    return lines
