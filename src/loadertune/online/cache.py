"""The online loader's memory of its decisions: the pick per machine and workload, so the next
run starts there and only verifies. One JSON file per key under ``LOADERTUNE_CACHE_DIR``
(default ``~/.cache/loadertune``), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadertune.analysis.document import write_atomic
from loadertune.records.config import LoaderConfig

CACHE_ENV = "LOADERTUNE_CACHE_DIR"
SCHEMA = "loadertune.online-pick"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "loadertune")


@dataclass(frozen=True)
class Remembered:
    """A cached pick: its config and the per-batch time it ran at."""

    config: LoaderConfig
    batch_s: float | None
    finished: bool = True  # the search that picked it settled by itself


def workload_key(facts: dict[str, Any]) -> str:
    """A short digest of what decides the pick (dataset type and length, batch size, collate,
    usable CPUs, torch version, the knobs fixed by the user)."""
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def recall(key: str) -> Remembered | None:
    """The pick cached under ``key``; None if absent or unreadable (a cache never fails a job)."""
    try:
        doc = json.loads((cache_dir() / f"{key}.json").read_text())
        if doc.get("schema") != SCHEMA:
            return None
        config = LoaderConfig.from_kwargs(doc["config"])
        return Remembered(config, doc.get("batch_s"), bool(doc.get("finished", True)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(key: str, pick: Remembered, facts: dict[str, Any]) -> None:
    """Write the pick for ``key``; an unwritable cache is skipped silently (never the job's
    failure)."""
    doc = {
        "schema": SCHEMA,
        "config": pick.config.to_kwargs(),
        "batch_s": pick.batch_s,
        "finished": pick.finished,
        "facts": facts,
    }
    try:
        write_atomic(cache_dir() / f"{key}.json", json.dumps(doc, indent=1, default=str))
    except OSError:
        return
