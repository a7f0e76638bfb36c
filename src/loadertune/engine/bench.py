"""Run a list of configs with interleaved repeats, so drift hits every config alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadertune.engine.harness import OFFLINE
from loadertune.engine.machine import machine_facts
from loadertune.engine.ranked import distributed_facts, follow, leading, ranks_for
from loadertune.engine.ranks import Ranks
from loadertune.engine.trials import OnTrial, TrialRunner
from loadertune.engine.workload import Workload
from loadertune.records import defaults
from loadertune.records.config import LoaderConfig
from loadertune.records.limits import TrialLimits
from loadertune.records.result import Result


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
    repeats: int = defaults.REPEATS,
    limits: TrialLimits | None = None,
    on_trial: OnTrial | None = None,
    json_path: str | Path | None = None,
    command: list[str] | None = None,
    diagnose: bool = True,
    warm_up: bool = True,
    ranks: Ranks | str | None = "auto",
) -> Result:
    """Measure each config ``repeats`` times on the workload's real step and return the result.

    A config that fails is recorded with its reason and the others still run. With
    ``json_path`` the result document is rewritten (atomically) after every trial. Ctrl-C raises
    :class:`Interrupted`, whose ``result`` holds every trial finished before it and the one it
    cut short, marked ``interrupted``. With ``diagnose`` (the default) the fastest config's
    headroom and batch probes are measured too (a few seconds; see :mod:`diagnose`), for the
    result's ``verdict`` and ``advice``. With ``warm_up`` (the default) the first config's
    first batches run once, uncounted, before the first timed trial (about a second).
    Under ``torchrun`` (``ranks="auto"``: the job's process group, if it made one; or the
    :class:`Ranks` given) every rank must call it: each trial runs on every rank at once, rank
    0 decides and writes, and every rank returns rank 0's result (see :mod:`ranked`).

    >>> result = bench(Workload(my_dataset, step=train_step), [LoaderConfig(0), LoaderConfig(4)])
    >>> DataLoader(my_dataset, **result.best.loader_kwargs)  # doctest: +SKIP
    """
    configs = _unique(configs)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    limits = limits or TrialLimits()
    chosen = ranks_for(workload, ranks)
    if chosen is not None and not chosen.leader:
        return follow(chosen, workload, OFFLINE)
    with leading(chosen) as lead:
        result = new_result(workload, {"repeats": repeats, **asdict(limits)}, command, chosen)
        run = TrialRunner(
            result, workload, limits, on_trial, json_path, warm_up=warm_up, ranks=chosen
        )
        plan = schedule(configs, repeats)
        for index, (repeat, config) in enumerate(plan):
            run.one(config, repeat, (index, len(plan)))
        if diagnose:
            run.diagnose()
        lead.result = run.finish()
    return lead.finished()


def profile(
    data: Any,
    step: Callable[[Any], Any] | None = None,
    *,
    epochs: int = defaults.EPOCHS,
    repeats: int = defaults.REPEATS,
    limits: TrialLimits | None = None,
    on_trial: OnTrial | None = None,
    json_path: str | Path | None = None,
    command: list[str] | None = None,
    ranks: Ranks | str | None = "auto",
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
        ranks=ranks,
    )


def new_result(
    workload: Workload,
    settings: dict[str, Any],
    command: list[str] | None,
    ranks: Ranks | None = None,
) -> Result:
    """An empty result with the machine and workload facts (and the ranks', under torchrun)."""
    result = Result(
        machine=machine_facts().to_dict(),
        workload=workload.facts(),
        settings=settings,
        command=command,
    )
    if ranks is not None:
        result.distributed = distributed_facts(ranks, result.usable_cpus)
    return result


def _unique(configs: Iterable[LoaderConfig]) -> list[LoaderConfig]:
    unique = list(dict.fromkeys(configs))
    if not unique:
        raise ValueError("no configs to measure")
    return unique
