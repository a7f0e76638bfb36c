"""Run a list of configs with interleaved repeats, so drift hits every config alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadertune.core import guard
from loadertune.core.config import LoaderConfig
from loadertune.core.diagnose import LOADER_ALONE_S
from loadertune.core.diagnose import diagnose as run_diagnosis
from loadertune.core.machine import machine_facts
from loadertune.core.result import Result
from loadertune.core.runner import TrialInterrupted, TrialLimits, run_trial
from loadertune.core.trial import Trial
from loadertune.core.workload import Workload


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


def schedule(configs: Sequence[LoaderConfig], repeats: int) -> list[tuple[int, LoaderConfig]]:
    """Interleaved order: every config once per round, each round rotated by one, so no config
    always runs first (cold caches) or right after the same neighbour."""
    order = []
    for r in range(repeats):
        shift = r % len(configs)
        order += [(r, c) for c in [*configs[shift:], *configs[:shift]]]
    return order


def bench(
    workload: Workload,
    configs: Iterable[LoaderConfig],
    *,
    repeats: int = 3,
    limits: TrialLimits | None = None,
    on_trial: OnTrial | None = None,
    json_path: str | Path | None = None,
    command: list[str] | None = None,
    diagnose: bool = True,
) -> Result:
    """Measure each config ``repeats`` times on the workload's real step and return the result.

    A config that fails is recorded with its reason and the others still run. With
    ``json_path`` the result document is rewritten (atomically) after every trial. Ctrl-C raises
    :class:`Interrupted`, whose ``result`` holds every trial finished before it and the one it
    cut short, marked ``interrupted``. With ``diagnose`` (the default) the fastest config's
    headroom and batch probes are measured too (a few seconds; see :mod:`diagnose`), for the
    result's ``verdict`` and ``advice``.

    >>> result = bench(Workload(my_dataset, step=train_step), [LoaderConfig(0), LoaderConfig(4)])
    >>> DataLoader(my_dataset, **result.best.loader_kwargs)  # doctest: +SKIP
    """
    configs = _unique(configs)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    limits = limits or TrialLimits()
    result = new_result(workload, {"repeats": repeats, **asdict(limits)}, command)
    run = TrialRunner(result, workload, limits, on_trial, json_path)
    plan = schedule(configs, repeats)
    for index, (repeat, config) in enumerate(plan):
        run.one(config, repeat, (index, len(plan)))
    if diagnose:
        run.diagnose()
    return result


def profile(
    data: Any,
    step: Callable[[Any], Any] | None = None,
    *,
    epochs: int = 1,
    repeats: int = 3,
    limits: TrialLimits | None = None,
    on_trial: OnTrial | None = None,
    json_path: str | Path | None = None,
    command: list[str] | None = None,
) -> Result:
    """Diagnose one existing DataLoader as it is configured (or a Dataset at its defaults),
    without searching: its figures, verdict, headroom and advice.

    >>> result = profile(my_loader, train_step)  # doctest: +SKIP
    >>> print(result.verdict["sentence"])  # doctest: +SKIP
    """
    workload = data if isinstance(data, Workload) else Workload(data, step=step, epochs=epochs)
    config = workload.baseline_config()
    return bench(
        workload,
        [config],
        repeats=repeats,
        limits=limits,
        on_trial=on_trial,
        json_path=json_path,
        command=command,
    )


def new_result(workload: Workload, settings: dict[str, Any], command: list[str] | None) -> Result:
    """An empty result with the machine and workload facts."""
    return Result(
        machine=machine_facts().to_dict(),
        workload=workload.facts(),
        settings=settings,
        command=command,
    )


@dataclass
class TrialRunner:
    """Runs trials into ``result``, saving after each and reporting progress; Ctrl-C becomes
    :class:`Interrupted` after the last whole result is saved."""

    result: Result
    workload: Workload
    limits: TrialLimits
    on_trial: OnTrial | None
    json_path: str | Path | None

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
        try:
            guard.check_interrupt()
            trial = run_trial(self.workload, config, limits or self.limits, repeat=repeat)
        except KeyboardInterrupt as exc:
            if isinstance(exc, TrialInterrupted):
                self.result.trials.append(exc.trial)
            self.result.interrupted = True
            self._save()
            raise Interrupted(self.result) from exc
        self.result.trials.append(trial)
        self._save()
        self._tell(TrialEvent(index, total, config, repeat, trial))
        return trial

    def diagnose(self, loader_alone_s: float = LOADER_ALONE_S) -> None:
        """Measure the headroom and batch probes of the current best config, into the result."""
        best = self.result.best
        if best is None:
            return
        try:
            self.result.diagnosis = run_diagnosis(
                self.workload, best.config, self.limits.timeout_s, loader_alone_s
            )
        except KeyboardInterrupt as exc:
            self.result.interrupted = True
            self._save()
            raise Interrupted(self.result) from exc
        self._save()

    def save(self) -> None:
        """Rewrite the result document (after changing the result outside a trial)."""
        self._save()

    def _tell(self, event: TrialEvent) -> None:
        if self.on_trial is not None:
            self.on_trial(event)

    def _save(self) -> None:
        if self.json_path is not None:
            self.result.save(self.json_path)


def _unique(configs: Iterable[LoaderConfig]) -> list[LoaderConfig]:
    unique = list(dict.fromkeys(configs))
    if not unique:
        raise ValueError("no configs to measure")
    return unique
