"""tune: search the knobs within a time budget, then pick the cheapest config within noise of
the fastest, and say what it gains over the baseline and the two common rules."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadertune.engine.bench import new_result
from loadertune.engine.forked import start_method
from loadertune.engine.harness import OFFLINE
from loadertune.engine.ranked import follow, leading, ranks_for
from loadertune.engine.ranks import Ranks
from loadertune.engine.trials import OnTrial, TrialRunner
from loadertune.engine.workload import Workload
from loadertune.records import defaults
from loadertune.records.config import LoaderConfig
from loadertune.records.limits import TrialLimits
from loadertune.records.result import Result, Summary
from loadertune.records.trial import Trial
from loadertune.tuning.adaptive import Adaptive
from loadertune.tuning.history import History, plain, planned_median
from loadertune.tuning.pick import Pick, noise_band, pick, speedup
from loadertune.tuning.strategy import Grid, Strategy, worker_grid

TRIAL_SHARE = 1 / 20  # each trial measures for about this share of the budget ...
TRIAL_BUDGET_BOUNDS_S = (0.5, 5.0)  # ... within these bounds
CONTENDER_BAND = 0.10  # configs within 10% of the fastest are measured again ...
CONFIRM_REPEATS = 3  # ... up to this many runs each, interleaved, as the budget allows
EXPLORE_SHARE = 0.75  # exploring stops here; the rest of the budget confirms the contenders
SEARCH_SHARE = 0.9  # ... and the last tenth is kept for the pick's diagnosis (headroom, probes)
DIAGNOSIS_EXTRA_S = 1.5  # the diagnosis beyond its loader-alone trial: step alone, batch probes
MIN_TIMEOUT_S = 1.0  # a trial's no-batch timeout never drops below this, however little is left
FIRST_TRIAL_FACTOR = 2.0  # until a trial has run, assume one takes twice the trial budget
MIN_COMPARED = 2  # fewer configs measured than this when the budget ran out: no pick


@dataclass
class Budget:
    """Wall-clock bookkeeping. A trial starts only if it is predicted to end in time: its
    predicted wall time is that of the measured config with the nearest worker count (trial
    times grow with workers: startup, and the batches a cut needs)."""

    total_s: float
    clock: Callable[[], float] = time.perf_counter
    started: float | None = None  # when the budget began (the command's start); default: now
    walls: dict[int, float] = field(default_factory=dict)  # num_workers -> longest trial wall

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    @property
    def elapsed_s(self) -> float:
        return self.clock() - (self.started or 0.0)

    @property
    def left_s(self) -> float:
        return self.total_s - self.elapsed_s

    def predict_s(self, config: LoaderConfig, trial_budget_s: float) -> float:
        if not self.walls:
            return FIRST_TRIAL_FACTOR * trial_budget_s
        nearest = min(self.walls, key=lambda n: (abs(n - config.num_workers), -n))
        return self.walls[nearest]

    def fits(self, config: LoaderConfig, trial_budget_s: float, share: float = 1.0) -> bool:
        """Whether ``config``'s trial should end within ``share`` of the total budget."""
        predicted = self.predict_s(config, trial_budget_s)
        return self.elapsed_s + predicted <= self.total_s * share

    def spent(self, config: LoaderConfig, trial_s: float) -> None:
        n = config.num_workers
        self.walls[n] = max(self.walls.get(n, 0.0), trial_s)


def trial_budget_s(budget_s: float) -> float:
    low, high = TRIAL_BUDGET_BOUNDS_S
    return min(high, max(low, budget_s * TRIAL_SHARE))


def tune(
    workload: Workload,
    *,
    budget_s: float = defaults.TUNE_BUDGET_S,
    max_workers: int | None = None,
    max_memory_bytes: int | None = None,
    strategy: Strategy | str = defaults.STRATEGY,
    trial_timeout_s: float = defaults.TRIAL_TIMEOUT_S,
    started: float | None = None,
    on_trial: OnTrial | None = None,
    json_path: str | Path | None = None,
    command: list[str] | None = None,
    ranks: Ranks | str | None = "auto",
) -> Result:
    """Search DataLoader knobs on the workload's real step for about ``budget_s`` seconds.

    Returns a Result whose ``best`` is the pick (``best.loader_kwargs`` go straight into
    ``DataLoader(dataset, **...)``) and whose ``tuning`` says why, what the pick gains over the
    baseline and the common rules, and what the search would try next if the budget cut it.
    ``started`` (a ``time.perf_counter()`` value) is when the budget began, if before the call.
    Under ``torchrun`` every rank must call it (``ranks`` as in :func:`bench`): every rank
    measures each config at once, rank 0 searches on the slowest rank's figures, and every rank
    returns its result.
    """
    if budget_s <= 0:
        raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
    limits = TrialLimits(
        budget_s=trial_budget_s(budget_s),
        timeout_s=trial_timeout_s,
        max_memory_bytes=max_memory_bytes,  # a trial heading over it is stopped mid-epoch
    )
    settings = {
        "budget_s": budget_s,
        "trial_budget_s": limits.budget_s,
        "max_memory_bytes": max_memory_bytes,
    }
    chosen = ranks_for(workload, ranks)
    if chosen is not None and not chosen.leader:
        return follow(chosen, workload, OFFLINE)
    with leading(chosen) as lead:
        result = new_result(workload, settings, command, chosen)
        runner = TrialRunner(
            result, workload, limits, on_trial, json_path, warm_up=True, ranks=chosen
        )
        budget = Budget(budget_s, started=started)
        search = _Search(workload, result, runner, budget, max_memory_bytes)
        if isinstance(strategy, str):
            strategy = make_strategy(strategy, workload, result, max_workers)
        search.explore(strategy, EXPLORE_SHARE)
        search.confirm()
        search.explore(strategy, SEARCH_SHARE)  # what the contenders left of the search's share
        search.conclude(strategy)
        search.diagnose()
        lead.result = runner.finish()
    return lead.finished()


def make_strategy(
    name: str, workload: Workload, result: Result, max_workers: int | None
) -> Strategy:
    """The strategy called ``name`` (a key of :data:`STRATEGIES`) for this machine."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}") from None
    return factory(workload, result, max_workers)


def grid_strategy(workload: Workload, result: Result, max_workers: int | None) -> Grid:
    """The exhaustive reference: every worker count on :func:`worker_grid`."""
    cap = _max_workers(result, max_workers)
    return Grid([LoaderConfig(n) for n in worker_grid(cap)])


def _max_workers(result: Result, max_workers: int | None) -> int:
    """Default cap: well above the core count, since I/O-bound loaders want many workers."""
    cpus = _cpus(result)
    cap = max(defaults.MAX_WORKERS_FLOOR, defaults.WORKERS_PER_CPU * cpus)
    return max_workers if max_workers is not None else cap


def default_strategy(workload: Workload, result: Result, max_workers: int | None) -> Adaptive:
    """The adaptive search for this machine: its usable CPUs, start methods and torch."""
    import torch

    cpus = _cpus(result)
    # The platform's default start method is the baseline's. Besides it only forkserver: it and
    # spawn both give each worker a fresh interpreter that imports everything again and gets
    # the dataset pickled (no copy-on-write pages shared with the main process), and run alike
    # once started; so one trial shows what a fresh interpreter costs or saves. (Here, at w=4:
    # 4.6 s and 4.0 s to the first batch, against 0.15 s with fork; `bench --start-method`
    # measures either.)
    available = tuple(result.machine.get("start_methods", []))
    methods = tuple(m for m in ("forkserver",) if m in available)
    context, why = start_method(workload, available)  # fork after CUDA, where it breaks
    if why is not None:
        result.settings["start_method"] = {"fork": why, "used": context}
    return Adaptive(
        usable_cpus=cpus,
        max_workers=_max_workers(result, max_workers),
        epochs=workload.epochs,
        baseline=workload.baseline_config(),
        unordered_ok=_torch_at_least(torch.__version__, (2, 6)) and _plain_class(workload),
        start_methods=methods,
        cuda=bool(result.machine.get("cuda_available")) and workload.device != "cpu",
        context=context,
    )


STRATEGIES: dict[str, Callable[[Workload, Result, int | None], Strategy]] = {
    "adaptive": default_strategy,
    "grid": grid_strategy,
}


def _cpus(result: Result) -> int:
    """The usable CPUs one loader has: each local rank's share under torchrun."""
    return result.cpus_per_rank or int(result.machine["cpus"]["usable"])


def _plain_class(workload: Workload) -> bool:
    """Torch's own DataLoader: a subclass may rest on the delivery order (torchdata's
    StatefulDataLoader warns that in_order=False voids its checkpoints), so in_order=False
    is tried only on torch's class."""
    from torch.utils.data import DataLoader

    return workload.loader_class.cls is DataLoader


def _torch_at_least(version: str, wanted: tuple[int, int]) -> bool:
    parts = version.split("+", 1)[0].split(".")
    return (int(parts[0]), int(parts[1])) >= wanted


@dataclass
class _Search:
    workload: Workload
    result: Result
    runner: TrialRunner
    budget: Budget
    max_memory_bytes: int | None
    rejected: dict[LoaderConfig, str] = field(default_factory=dict)
    next_config: LoaderConfig | None = None

    def history(self) -> History:
        return History(self.result.summaries(), self.rejected)

    def explore(self, strategy: Strategy, share: float) -> None:
        """Measure what the strategy proposes, once each, while ``share`` of the budget lasts."""
        self.next_config = None
        while (config := strategy.propose(self.history())) is not None:
            if not self.budget.fits(config, self.runner.limits.budget_s, share):
                self.next_config = config
                return
            self._measure(config, repeat=0)

    def confirm(self) -> None:
        """Measure the contenders again, interleaved, so noise cannot decide the pick (a lone
        leader needs no duel: its time is better spent exploring)."""
        contenders = self._contenders()
        if len(contenders) < 2:
            return
        for repeat in range(1, CONFIRM_REPEATS):
            for summary in contenders:
                if not self.budget.fits(summary.config, self.runner.limits.budget_s, SEARCH_SHARE):
                    return
                self._measure(summary.config, repeat)

    def _contenders(self) -> list[Summary]:
        """Configs within reach of the fastest, and the baseline whatever its time: the pick's
        speedup is quoted against it, and a baseline measured once, first, can be cold (on
        .npy files a cold w=0 lost to w=2 by 27% and beat it by 1.65x measured again)."""
        usable = self.history().usable()
        if not usable:
            return []
        fastest = min(planned_median(s) for s in usable)
        band = max(CONTENDER_BAND, 2 * noise_band(usable))
        baseline = self.workload.baseline_config()
        return [
            s for s in usable if planned_median(s) <= fastest * (1 + band) or s.config == baseline
        ]

    def _measure(self, config: LoaderConfig, repeat: int) -> None:
        """One trial; a trial that cannot deliver a batch in what is left of the budget is
        stopped then (a forkserver start of 32 workers took 35-57 s here)."""
        began = self.budget.clock()
        limits = replace(
            self.runner.limits,
            timeout_s=min(self.runner.limits.timeout_s, max(self.budget.left_s, MIN_TIMEOUT_S)),
        )
        trial = self.runner.one(config, repeat, (len(self.result.trials), None), limits)
        self.budget.spent(config, self.budget.clock() - began - self.runner.warm_up_wall_s)
        if limits.timeout_s < self.runner.limits.timeout_s:
            _blame_the_budget(trial, limits.timeout_s)
        reason = rejection(trial, self.max_memory_bytes)
        if reason:
            self.rejected[config] = reason

    def conclude(self, strategy: Strategy) -> None:
        """The pick, unless the budget left nothing to compare: one config measured is no
        tuning (on 3 ms storage reads a 5 s budget measured w=0 alone, 5x slower than w=16),
        and saying "pick" then would be a confident wrong answer."""
        history = self.history()
        usable = history.usable()
        cut_short = self.next_config is not None and len(usable) < MIN_COMPARED
        chosen = None if cut_short else pick(usable)
        self.result.pick = chosen.chosen.config if chosen else None
        self.result.tuning = self._report(strategy, chosen, history)
        if cut_short:
            self.result.tuning["reason"] = self._too_short(usable)
        self.runner.save()

    def _too_short(self, usable: list[Summary]) -> str:
        """Why there is no pick when the budget ran out before two configs were measured."""
        total, elapsed = self.budget.total_s, self.budget.elapsed_s
        nxt = self.next_config or LoaderConfig()
        more = self.budget.predict_s(nxt, self.runner.limits.budget_s)
        if not self.result.trials:
            done = f"the budget ({total:.3g} s) ran out before the first trial: {elapsed:.2g} s "
            done += "had passed importing torch and your code"
        else:
            measured = ", ".join(s.config.label() for s in usable) or "no config"
            done = f"the budget ({total:.3g} s) fit only {measured}, with nothing to compare it to"
        return (
            f"{done}; the next trial ({nxt.label()}) needs about {more:.2g} s more, so give "
            f"--budget {math.ceil(elapsed + 3 * more)} or more"
        )

    def diagnose(self) -> None:
        """The pick's headroom and batch probes, if what is left of the budget fits them (the
        loader-alone run is one more trial of the pick; the rest takes about a second)."""
        pick, budget_s = self.result.pick, self.runner.limits.budget_s
        if pick is None:
            return
        needed = self.budget.predict_s(pick, budget_s) + DIAGNOSIS_EXTRA_S
        if self.budget.elapsed_s + needed > self.budget.total_s:
            self.result.tuning = {**(self.result.tuning or {}), "diagnosis": "skipped: budget"}
            self.runner.save()
            return
        self.runner.diagnose(loader_alone_s=budget_s)
        self.result.tuning = {**(self.result.tuning or {}), "elapsed_s": self._elapsed()}
        self.runner.save()

    def _elapsed(self) -> float:
        return round(self.budget.elapsed_s, 3)

    def _report(self, strategy: Strategy, chosen: Pick | None, history: History) -> dict[str, Any]:
        return {
            "strategy": strategy.name,
            "pick": chosen.chosen.config.to_kwargs() if chosen else None,
            "fastest": chosen.fastest.config.to_kwargs() if chosen else None,
            "noise": chosen.noise if chosen else None,
            "reason": chosen.reason if chosen else "no configuration ran successfully",
            "speedups": _speedups(chosen, history, self.workload, self.result) if chosen else {},
            "budget_s": self.budget.total_s,
            "elapsed_s": self._elapsed(),  # the diagnosis, when it runs, adds its time
            "stopped_by_budget": self.next_config is not None,
            "next": self.next_config.to_kwargs() if self.next_config else None,
            "rejected": {c.label(): why for c, why in self.rejected.items()},
        }


def _blame_the_budget(trial: Trial, left_s: float) -> None:
    """A trial whose no-batch timeout was cut to what was left of the budget did not hang:
    it was slow to start (forkserver or many workers). Say so, not "timed out"."""
    error = trial.error
    if error is not None and error.kind == "timeout" and not trial.batches:
        error.message = (
            f"stopped: no batch within the {left_s:.3g} s left of the budget (slow to start, "
            "not a hang; a larger --budget measures it)"
        )


def rejection(trial: Trial, max_memory_bytes: int | None) -> str | None:
    """Why the search must not pick ``trial``'s config again, or None: it cannot run here, it
    gave no batch in time, or it was stopped at or before the memory limit, or its measured
    peak passed the limit anyway."""
    error = trial.error
    if error is not None and error.kind in ("unpicklable", "cuda_fork"):
        return f"skipped: {error.message}"
    if error is not None and error.kind == "timeout":
        return "stopped: no batch before the budget ran out"
    if error is not None and error.kind == "memory":
        return f"rejected: {error.message.removeprefix('stopped: ')}"
    peak = trial.peak_memory_bytes
    if max_memory_bytes and peak and peak > max_memory_bytes:
        return f"rejected: peak memory {_gib(peak)} over the limit of {_gib(max_memory_bytes)}"
    return None


def _speedups(
    chosen: Pick, history: History, workload: Workload, result: Result
) -> dict[str, dict[str, Any]]:
    """The pick against the baseline and the two common rules, where they were measured
    (with the start method the search gave its workers, where fork was not tried)."""
    cpus, context = _cpus(result), (result.settings.get("start_method") or {}).get("used")
    rules = {
        "baseline": workload.baseline_config(),
        "one_per_cpu": plain(cpus, context),
        "lightning": plain(max(cpus - 1, 0), context),
    }
    by_config = {s.config: s for s in history.summaries}
    out = {}
    for name, config in rules.items():
        ratio = speedup(chosen.chosen, by_config.get(config))
        out[name] = {"config": config.to_kwargs(), "label": config.label(), "speedup": ratio}
    return out


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"
