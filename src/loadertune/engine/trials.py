"""Trials run one after another into one result: saved after each, progress told, Ctrl-C
turned into :class:`Interrupted` with what was measured; what one trial learns about the data
(the warm-up, a stream's length) shared with the next."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadertune.analysis.document import analyse, save
from loadertune.engine.counts import STREAM_ENDED, stream_note
from loadertune.engine.diagnose import LOADER_ALONE_S
from loadertune.engine.diagnose import diagnose as run_diagnosis
from loadertune.engine.harness import OFFLINE, Harness
from loadertune.engine.heard import hearing, labelled
from loadertune.engine.offline import TrialInterrupted, run_trial
from loadertune.engine.ranks import DIAGNOSE, TRIAL, RankLostError, Ranks
from loadertune.engine.workload import Workload
from loadertune.records.config import LoaderConfig
from loadertune.records.limits import TrialLimits
from loadertune.records.result import Result
from loadertune.records.trial import Trial

WARM_UP_S = 1.0  # the warm-up's trial budget: enough for lazy imports and first calls, and
# the first files' pages; a whole cold epoch is outvoted by repeats, not warmed away


@dataclass(frozen=True)
class TrialEvent:
    """Progress news: ``trial`` is None when the trial starts, set when it ends."""

    index: int
    total: int | None  # None when a search does not know how many trials it will run
    config: LoaderConfig
    repeat: int
    trial: Trial | None = None


OnTrial = Callable[[TrialEvent], None]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, under the CLI) during a run; ``result`` keeps what was measured."""

    def __init__(self, result: Result) -> None:
        super().__init__("interrupted")
        self.result = result


@dataclass
class TrialRunner:
    """Runs trials into ``result``, saving after each and reporting progress; Ctrl-C becomes
    :class:`Interrupted` after the last whole result is saved."""

    result: Result
    workload: Workload
    limits: TrialLimits
    on_trial: OnTrial | None
    json_path: str | Path | None
    stream_batches: int | None = None  # a length-less stream's real length, once one ended
    warm_up: bool = False  # warm up before the next trial (set False once done)
    warm_up_wall_s: float = 0.0  # what the warm-up took, inside the last one() call
    harness: Harness = OFFLINE
    ranks: Ranks | None = None  # rank 0 under torchrun: every trial runs on every rank

    def __post_init__(self) -> None:
        self._save()  # a path that cannot be written fails now, before anything is measured

    def one(
        self,
        config: LoaderConfig,
        repeat: int,
        position: tuple[int, int | None],
        limits: TrialLimits | None = None,
    ) -> Trial:
        """Run one trial (``position``: its index and the total, if known)."""
        index, total = position
        self._tell(TrialEvent(index, total, config, repeat))
        limits = limits or self.limits
        self.warm_up_wall_s = 0.0
        try:
            self.harness.check_interrupt()
            trial = self._warm_up(config, limits, repeat) if self.warm_up else None
            if trial is None:
                trial = self._run(config, limits, repeat)
        except (KeyboardInterrupt, RankLostError) as exc:  # Ctrl-C, or another rank stopped
            if isinstance(exc, TrialInterrupted):
                self.result.trials.append(exc.trial)
            self.result.interrupted = True
            self._save()
            raise Interrupted(self.result) from exc
        self.result.trials.append(trial)
        self._learn_stream(trial)
        self._save()
        self._tell(TrialEvent(index, total, config, repeat, trial))
        return trial

    def _run(self, config: LoaderConfig, limits: TrialLimits, repeat: int) -> Trial:
        arguments: dict[str, Any] = {
            "config": config,
            "limits": limits,
            "repeat": repeat,
            "stream_batches": self.stream_batches,
        }
        if self.ranks is not None:
            self.ranks.start(TRIAL, arguments)
        mine = run_trial(self.workload, harness=self.harness, **arguments)
        return mine if self.ranks is None else self.ranks.slowest_of(mine)

    def _warm_up(self, config: LoaderConfig, limits: TrialLimits, repeat: int) -> Trial | None:
        """Once, before the first timed trial: the first batches of its config, uncounted, so
        lazy imports, first allocations, the step's first calls and the page cache of the
        first files are not charged to whichever config runs first (a cold baseline on .npy
        files measured 1.15 s against 0.7 s warm). A warm-up that fails is kept as the trial
        (its failure is the config's, and a hang is not waited out twice)."""
        self.warm_up = False
        began = time.perf_counter()
        warm = self._run(config, replace(limits, budget_s=self._warm_up_budget_s(limits)), repeat)
        self.warm_up_wall_s = time.perf_counter() - began
        self.result.settings["warm_up"] = {
            "config": config.to_kwargs(),
            "batches": warm.batches,
            "wall_s": round(self.warm_up_wall_s, 3),
        }
        if not warm.ok:
            return warm
        self._learn_stream(warm)  # a stream it ran to the end has its length known
        return None

    def _warm_up_budget_s(self, limits: TrialLimits) -> float:
        """At most the trial budget, and :data:`WARM_UP_S`; a stream of unknown length gets at
        least that long, so a short one runs to its end and its length is known before the
        first timed trial (a 50-batch webdataset stream cut at 0.5 s was estimated for 200)."""
        if self.stream_batches is None and not self.result.workload["epoch_batches"]:
            return max(limits.budget_s, WARM_UP_S)
        return min(limits.budget_s, WARM_UP_S)

    def _learn_stream(self, trial: Trial) -> None:
        """A stream without length that ended before the batch budget has its real length:
        from now on every trial runs to it, and trials cut short before are estimated for it
        (not for the budget), so every figure is for the same work. The note says so once, in
        the workload facts, instead of on the rows whose stream happened to end."""
        budget = self.stream_batches or self.workload.batch_budget
        if not trial.complete or trial.batches >= budget or self.result.workload["epoch_batches"]:
            return
        self.stream_batches = trial.batches
        for earlier in self.result.trials:
            if earlier.batches > trial.batches:  # more than the whole stream: other work
                earlier.warnings.append(
                    f"delivered {earlier.batches} batches where the stream at "
                    f"{trial.config.label()} ended after {trial.batches}: not the same work "
                    "(does each worker repeat the stream? split it with get_worker_info())"
                )
            elif not earlier.complete:
                earlier.epoch_batches = trial.batches
            earlier.warnings = [w for w in earlier.warnings if not w.startswith(STREAM_ENDED)]
        self.result.workload["stream_batches"] = trial.batches
        self.result.workload["stream_note"] = stream_note(
            trial.batches, self.workload.batch_budget, every_config=True
        )

    def diagnose(self, loader_alone_s: float = LOADER_ALONE_S) -> None:
        """Measure the headroom and batch probes of the current best config, into the result."""
        best = self.result.best
        if best is None:
            return
        arguments: dict[str, Any] = {
            "config": best.config,
            "timeout_s": self.limits.timeout_s,
            "loader_alone_s": loader_alone_s,
        }
        try:
            if self.ranks is not None:
                self.ranks.start(DIAGNOSE, arguments)
            with hearing() as heard:
                diagnosis = run_diagnosis(self.workload, **arguments)
            if self.ranks is not None:
                self.ranks.gather(None)
            told = {w for t in self.result.trials for w in t.warnings}
            new = [w for w in labelled(heard) if w not in told]
            self.result.diagnosis = {**diagnosis, "warnings": new} if new else diagnosis
        except (KeyboardInterrupt, RankLostError) as exc:
            self.result.interrupted = True
            self._save()
            raise Interrupted(self.result) from exc
        self._save()

    def save(self) -> None:
        """Rewrite the result document (after changing the result outside a trial)."""
        self._save()

    def finish(self) -> Result:
        """The result, analysed and saved: the run is over."""
        self._save()
        return self.result

    def _tell(self, event: TrialEvent) -> None:
        if self.on_trial is not None:
            self.on_trial(event)

    def _save(self) -> None:
        """The analysis brought up to date with the trials, and the document rewritten."""
        analyse(self.result)
        if self.json_path is not None:
            save(self.result, self.json_path)
