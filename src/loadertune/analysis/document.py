"""The result document: the record and what the analysis makes of it, in one JSON document,
versioned (``loadertune.result``, see :mod:`loadertune.records.result`) and written atomically.

This is the one place the JSON is assembled: the record's own data (trials raw, summaries'
figures) beside the verdict, the advice and each config's and trial's bottleneck.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from loadertune.analysis.advice import findings
from loadertune.analysis.explanation import result_verdict
from loadertune.analysis.verdict import Bottleneck, summary_bottleneck, trial_bottleneck
from loadertune.records.result import SCHEMA, VERSION, Result, Summary
from loadertune.records.trial import Trial


def analyse(result: Result) -> Result:
    """Fill in ``result.verdict`` and ``result.advice`` from its trials and diagnosis (pure
    functions of them); return the same result."""
    result.verdict = result_verdict(result)
    result.advice = findings(result)
    return result


def document(result: Result) -> dict[str, Any]:
    """The whole JSON document of ``result``, its analysis computed afresh."""
    best = result.best
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "created": result.created,
        "command": result.command,
        "interrupted": result.interrupted,
        "machine": result.machine,
        "workload": result.workload,
        "settings": result.settings,
        "distributed": result.distributed,
        "best": summary_document(best) if best else None,
        "verdict": result_verdict(result),
        "advice": findings(result),
        "diagnosis": result.diagnosis,
        "tuning": result.tuning,
        "check": result.check,
        "summary": [summary_document(s) for s in result.summaries()],
        "trials": [trial_document(t, result.epochs) for t in result.trials],
    }


def summary_document(summary: Summary) -> dict[str, Any]:
    """A config's medians and spread, with what limits it."""
    return {**summary.to_dict(), "bottleneck": _bottleneck_dict(summary_bottleneck(summary))}


def trial_document(trial: Trial, epochs: int) -> dict[str, Any]:
    """A trial's raw samples and figures, with what limited it."""
    return {**trial.to_dict(), "bottleneck": _bottleneck_dict(trial_bottleneck(trial, epochs))}


def save(result: Result, path: str | Path) -> None:
    """Write the document atomically: a crash at any moment leaves the last whole one."""
    write_atomic(Path(path), json.dumps(document(result), indent=1, allow_nan=False))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result is an ordinary file
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _bottleneck_dict(value: Bottleneck | None) -> dict[str, Any] | None:
    return value.to_dict() if value is not None else None
