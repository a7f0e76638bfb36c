"""Result: many trials, their summaries and the pick; a versioned JSON document written atomically.

Schema ``loadertune.result`` version 1. Readers should check ``schema`` and ``version``; fields
are only ever added within a version.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loadertune.core import stats
from loadertune.core.advice import findings
from loadertune.core.config import LoaderConfig
from loadertune.core.explanation import result_verdict
from loadertune.core.trial import Trial
from loadertune.core.verdict import Bottleneck, config_bottleneck, trial_bottleneck

SCHEMA = "loadertune.result"
VERSION = 1


@dataclass(frozen=True)
class Summary:
    """All repeats of one config: medians with their spread (over successful repeats)."""

    config: LoaderConfig
    trials: tuple[Trial, ...]
    epochs: int = 1
    fixed_kwargs: tuple[tuple[str, Any], ...] = ()
    keep_your_own: tuple[str, ...] = ()
    loader_class: str = "DataLoader"  # the user's class (e.g. StatefulDataLoader) was measured

    @property
    def ok_trials(self) -> list[Trial]:
        return [t for t in self.trials if t.ok]

    @property
    def failed(self) -> bool:
        return not self.ok_trials

    @property
    def measured_once(self) -> bool:
        """One successful run: its figures carry no spread of their own."""
        return len(self.ok_trials) == 1

    @property
    def loader_kwargs(self) -> dict[str, Any]:
        """What to pass to ``DataLoader(dataset, **loader_kwargs)``: the workload's batch size,
        shuffle and drop_last with this config's worker knobs."""
        return {**dict(self.fixed_kwargs), **self.config.to_kwargs()}

    @property
    def usage(self) -> str:
        """How to build the loader, in one line of Python."""
        own = "".join(f", {name}=<yours>" for name in self.keep_your_own)
        return f"{self.loader_class}(dataset, **{self.loader_kwargs}{own})"

    def figure(self, name: str) -> stats.Spread | None:
        """Median and range of a derived figure (e.g. ``epoch_s``) across successful repeats."""
        values = [getattr(t, name) for t in self.ok_trials]
        return stats.spread([v for v in values if v is not None])

    @property
    def epoch_s(self) -> stats.Spread | None:
        return self.figure("epoch_s")

    @property
    def planned_s(self) -> stats.Spread | None:
        """Median wall time for the planned epochs (persistent workers start once)."""
        values = [t.planned_s(self.epochs) for t in self.ok_trials]
        return stats.spread([v for v in values if v is not None])

    @property
    def bottleneck(self) -> Bottleneck | None:
        """What limits this config (input, compute, startup or transfer), from its repeats."""
        return config_bottleneck(self.trials, self.epochs)

    @property
    def errors(self) -> list[str]:
        return [str(t.error) for t in self.trials if t.error is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "loader_kwargs": self.loader_kwargs,
            "keep_your_own": list(self.keep_your_own),
            "label": self.config.label(),
            "ok_repeats": len(self.ok_trials),
            "measured_once": self.measured_once,
            "failed_repeats": len(self.trials) - len(self.ok_trials),
            **{name: _spread_dict(self.figure(name)) for name in SUMMARY_FIGURES},
            "planned_s": _spread_dict(self.planned_s),
            "bottleneck": _bottleneck_dict(self.bottleneck),
            "errors": self.errors,
        }


SUMMARY_FIGURES = (
    "epoch_s",
    "samples_per_s",
    "startup_s",
    "data_wait_fraction",
    "peak_memory_bytes",
)


@dataclass
class Result:
    """What a bench (or tune) run measured: every trial, kept raw; machine and workload facts."""

    machine: dict[str, Any]
    workload: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    command: list[str] | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    interrupted: bool = False
    pick: LoaderConfig | None = None  # set by a search; else the best is the lowest median
    tuning: dict[str, Any] | None = None  # what the search did, JSON-ready
    diagnosis: dict[str, Any] | None = None  # headroom and batch probes (core/diagnose.py)

    @property
    def epochs(self) -> int:
        return int(self.workload.get("epochs") or 1)

    @property
    def usable_cpus(self) -> int | None:
        """The usable CPUs the machine facts counted (affinity and quota), if recorded."""
        usable = (self.machine.get("cpus") or {}).get("usable")
        return usable if isinstance(usable, int) else None

    def summaries(self) -> list[Summary]:
        """One summary per config, in the order configs were first tried."""
        groups: dict[LoaderConfig, list[Trial]] = {}
        for trial in self.trials:
            groups.setdefault(trial.config, []).append(trial)
        fixed = tuple((self.workload.get("loader_kwargs") or {}).items())
        own = tuple(self.workload.get("keep_your_own") or ())
        cls = self.workload.get("loader_class") or "DataLoader"
        return [Summary(c, tuple(ts), self.epochs, fixed, own, cls) for c, ts in groups.items()]

    @property
    def best(self) -> Summary | None:
        """The search's pick if there was one, else the lowest median time for the planned
        epochs among the configs that ran."""
        summaries = self.summaries()
        if self.pick is not None or self.tuning is not None:  # a search decides, or found none
            return next((s for s in summaries if s.config == self.pick), None)
        ranked = [s for s in summaries if s.planned_s is not None]
        return min(ranked, key=lambda s: s.planned_s.median if s.planned_s else 0.0, default=None)

    @property
    def failed_trials(self) -> list[Trial]:
        return [t for t in self.trials if not t.ok]

    @property
    def verdict(self) -> dict[str, Any] | None:
        """What limits the pick, in one plain sentence with its figures; the headroom left."""
        return result_verdict(self)

    @property
    def advice(self) -> list[dict[str, Any]]:
        """Findings, each with its fix and the measurement behind it."""
        return findings(self)

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "created": self.created,
            "command": self.command,
            "interrupted": self.interrupted,
            "machine": self.machine,
            "workload": self.workload,
            "settings": self.settings,
            "best": best.to_dict() if best else None,
            "verdict": self.verdict,
            "advice": self.advice,
            "diagnosis": self.diagnosis,
            "tuning": self.tuning,
            "summary": [s.to_dict() for s in self.summaries()],
            "trials": [self._trial_dict(t) for t in self.trials],
        }

    def _trial_dict(self, trial: Trial) -> dict[str, Any]:
        return {
            **trial.to_dict(),
            "bottleneck": _bottleneck_dict(trial_bottleneck(trial, self.epochs)),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Result:
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"not a loadertune result (schema {doc.get('schema')!r})")
        if doc.get("version") != VERSION:
            raise ValueError(f"unsupported result version {doc.get('version')!r}, want {VERSION}")
        return cls(
            machine=doc["machine"],
            workload=doc["workload"],
            settings=doc.get("settings", {}),
            trials=[Trial.from_dict(t) for t in doc["trials"]],
            command=doc.get("command"),
            created=doc.get("created", ""),
            interrupted=doc.get("interrupted", False),
            pick=_pick_of(doc),
            tuning=doc.get("tuning"),
            diagnosis=doc.get("diagnosis"),
        )

    def save(self, path: str | Path) -> None:
        """Write the JSON document atomically: a crash at any moment leaves the last whole one."""
        write_atomic(Path(path), json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | Path) -> Result:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _pick_of(doc: dict[str, Any]) -> LoaderConfig | None:
    tuning = doc.get("tuning") or {}
    kwargs = tuning.get("pick")
    return LoaderConfig.from_kwargs(kwargs) if kwargs else None


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


def _spread_dict(value: stats.Spread | None) -> dict[str, float] | None:
    if value is None:
        return None
    return {"median": value.median, "low": value.low, "high": value.high, "n": value.n}
