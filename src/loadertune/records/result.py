"""Result: many trials, their summaries and the pick, as plain data, read back from its JSON
document (assembled in :mod:`loadertune.analysis.document`).

Schema ``loadertune.result`` version 1. Readers should check ``schema`` and ``version``; fields
are only ever added within a version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loadertune.records import stats
from loadertune.records.config import LoaderConfig
from loadertune.records.trial import Trial

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
            **{name: spread_dict(self.figure(name)) for name in SUMMARY_FIGURES},
            "planned_s": spread_dict(self.planned_s),
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
    diagnosis: dict[str, Any] | None = None  # headroom and batch probes (engine/diagnose.py)
    # What the analysis made of the run when it ended (analysis/document.py fills them in, and
    # a loaded document brings back what it held): the pick's verdict and the findings.
    verdict: dict[str, Any] | None = None
    advice: list[dict[str, Any]] = field(default_factory=list)
    distributed: dict[str, Any] | None = None  # under torchrun: the ranks it was measured under
    check: dict[str, Any] | None = None  # `loadertune check`: the rules, baseline and outcomes

    @property
    def cpus_per_rank(self) -> int | None:
        """The usable CPUs each local rank's loader has to itself: all of them in one process,
        a share under torchrun (every local rank's workers draw on the same CPUs)."""
        usable = self.usable_cpus
        local = int((self.distributed or {}).get("local_world_size") or 1)
        return None if usable is None else max(usable // local, 1)

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
            verdict=doc.get("verdict"),
            advice=list(doc.get("advice") or []),
            distributed=doc.get("distributed"),
            check=doc.get("check"),
        )

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """A result read back from its JSON document (``--json`` or ``json_path=``), with the
        verdict and advice the document held; raises ValueError for another schema or version."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _pick_of(doc: dict[str, Any]) -> LoaderConfig | None:
    tuning = doc.get("tuning") or {}
    kwargs = tuning.get("pick")
    return LoaderConfig.from_kwargs(kwargs) if kwargs else None


def spread_dict(value: stats.Spread | None) -> dict[str, float] | None:
    if value is None:
        return None
    return {"median": value.median, "low": value.low, "high": value.high, "n": value.n}
