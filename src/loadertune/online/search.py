"""The online search: which config runs next, while the user's loop trains.

It reuses ``tune``'s adaptive strategy (the anchors, then where the model fitted to the best
count's stretch points) and its pick (the cheapest config within noise of the fastest), on
stretches of the real job: each config runs until its stretch has enough batches for a steady
rate, or long enough to judge a slow one. Trying costs real training time, so a move is made only
while exploring has taken less than :data:`EXPLORE_SHARE` of the job's projected time, and only
when the most it could save over the batches left (the time the step still waits for data) is
worth several worker startups. Then it settles on the pick, with persistent workers where more
epochs follow, and stays.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from loadertune.engine.cpu import tree_cpu_seconds
from loadertune.online.stretch import (
    CPU_TICK_S,
    MIN_STRETCH_BATCHES,
    MIN_STRETCH_S,
    cpu_per_batch_s,
    enough,
    per_batch_s,
    snapshot,
    steady_per_batch_s,
    step_per_batch_s,
    wait_per_batch_s,
    worker_batch_s,
)
from loadertune.records.config import LoaderConfig
from loadertune.records.result import Summary
from loadertune.records.trial import Trial
from loadertune.tuning.adaptive import Adaptive
from loadertune.tuning.history import History
from loadertune.tuning.model import LoaderFit
from loadertune.tuning.pick import Pick, pick

log = logging.getLogger("loadertune")

COLD_FACTOR = 3.0  # a jump whose workers make a batch this much faster than the one-batch
# baseline took shows that batch was cold (first reads, lazy set-up): the baseline runs again
EXPLORE_SHARE = 0.15  # trying stops once it took this share of the job's projected time
WORTH_STARTUPS = 1.5  # a move is made only where what it could save is worth 1.5 startups
STARTUP_PER_WORKER_S = 0.015  # a forked worker's start (10-20 ms here), until one is measured
MAX_ONLINE_WORKERS = 32  # the most workers tried (fewer where an epoch has fewer batches)
DRIFT_FACTOR = 1.5  # an epoch this much slower per batch than the pick's stretch: look again
VERIFY_BAND = 1.25  # a cached pick whose first stretch runs within 25% of its figure stands
PROBE_RISK = 0.25  # a probe's stretch costs this share of its length on average: a worse
# config loses part of it, a better one wins (in-memory data, where workers always lose, never
# gets here: see MIN_WORKER_BATCH_S)
MIN_WORKER_BATCH_S = 1e-3  # receiving one batch from a worker costs the main loop about this
# (queue, unpickling, a shared-memory file per tensor): batches of three small tensors took
# 2.1 ms each from 1 worker here (in-memory rows, 0.19 ms each without workers) and 2.3 ms
# from 2 (a Hugging Face dataset, 0.73 ms without), so a loop that waits less cannot gain


@dataclass(frozen=True)
class _Seen(History):
    """The search's history, plus the configs passed over (not measured, not rejected: a
    rejection would cap the worker counts above it)."""

    passed: frozenset[LoaderConfig] = frozenset()

    @property
    def tried(self) -> set[LoaderConfig]:
        return super().tried | self.passed


@dataclass(frozen=True)
class Space:
    """What may be tuned: the knobs the user gave are fixed to their values."""

    fixed: dict[str, object] = field(default_factory=dict)
    unordered_ok: bool = False  # in_order="auto"
    start_methods: tuple[str, ...] = ()  # multiprocessing_context="auto"
    cuda: bool = False

    def constrain(self, config: LoaderConfig) -> LoaderConfig | None:
        """``config`` with the given knobs put back, or None where they cannot go together."""
        try:
            return dataclasses.replace(config, **self.fixed)  # type: ignore[arg-type]
        except ValueError:
            return None


@dataclass
class Autotune:
    """The controller of one online loader (see :class:`~loadertune.online.loader.Controller`).
    ``batches`` per epoch (None for a stream), ``epochs`` the job runs, ``start``: the config
    to begin with (a cached pick, then only verified)."""

    space: Space
    batches: int | None
    epochs: int
    usable_cpus: int
    start: LoaderConfig | None = None
    expected_batch_s: float | None = None  # what the cached start ran at, to verify
    max_workers: int = MAX_ONLINE_WORKERS
    trials: list[Trial] = field(default_factory=list)
    settled: Pick | None = None
    lost_s: float = 0.0  # stretches' time beyond what the best so far would have taken
    running: LoaderConfig | None = None  # the config the loader runs now
    cpu_now: Callable[[], float] = tree_cpu_seconds
    broken: dict[LoaderConfig, str] = field(default_factory=dict)  # config -> why it failed
    seen: int = 0  # batches of active stretches so far (the job's progress)
    finished: bool = True  # False: the job's end, not the search, stopped the trying

    def first(self, epoch: int) -> LoaderConfig:
        if self.running is None:
            first = self.start or self.space.constrain(LoaderConfig()) or LoaderConfig()
            self.running = self._as_run(first)
        return self.running

    def plain_next(self) -> bool:
        """Whether the next epoch runs whole on a config without workers: settled there, or
        a remembered pick without workers, verified on that epoch (nothing to switch to
        before its end: the search moves, if it must, from the next epoch)."""
        if self.settled is not None:
            return self.running is not None and not self.running.num_workers
        start = self.start
        fresh = not self.trials and self.expected_batch_s is not None
        return fresh and start is not None and not start.num_workers

    def after(self, stage: Trial, position: int, left: int | None) -> LoaderConfig | None:
        """After a batch of the active stretch: a new config to switch to now, or None (also
        when the epoch's ``left`` batches are not worth the new config's start: it then
        starts with the next epoch)."""
        self.seen += 1
        if self.settled is not None or stage.config != self.running:
            return None
        if not enough(stage, quick=self._quick_allowed(stage)):
            return None
        config = self._move(stage)
        if config is None or left is None:
            return config
        return (
            config if left * per_batch_s(stage) >= WORTH_STARTUPS * self._start_s(config) else None
        )

    def passed(self, batches: int) -> None:
        """``batches`` of the job went by without the search being asked (under ranks it is
        asked at the ranks' check-ins only)."""
        self.seen += batches

    def _quick_allowed(self, stage: Trial) -> bool:
        """Whether ``stage`` may be judged from its first batch or two: the search's first
        stretch, without workers, not a cached pick being verified."""
        return not self.trials and not stage.config.num_workers and self.expected_batch_s is None

    def _start_s(self, config: LoaderConfig) -> float:
        """What starting ``config``'s workers should take: per worker as measured, else a
        forked worker's typical start."""
        per_worker = [
            t.startup_s / t.config.num_workers
            for t in self.trials
            if t.config.num_workers and t.startup_s
        ]
        return config.num_workers * min(per_worker, default=STARTUP_PER_WORKER_S)

    def epoch_ended(self, stage: Trial) -> None:
        """The epoch's end cut the active stretch: it counts (the next epoch starts with what
        it points to; an iterable dataset switches only here). After settling, an epoch that
        ran :data:`DRIFT_FACTOR` slower per batch than the pick's stretch reopens the search."""
        if stage.config != self.running or not stage.batches:
            return
        if self.settled is None:
            self._move(stage)
        elif self._drifted(stage):
            log.info("the rate at %s drifted past the noise: looking again", stage.config.label())
            self.settled, self.lost_s = None, 0.0
            self._move(stage)

    def _drifted(self, stage: Trial) -> bool:
        settled = self.settled
        if settled is None or stage.batches < MIN_STRETCH_BATCHES:
            return False
        then = min((steady_per_batch_s(t) for t in settled.chosen.trials), default=None)
        now = steady_per_batch_s(stage)
        return then is not None and now > DRIFT_FACTOR * then

    def failed(self, config: LoaderConfig, reason: str) -> LoaderConfig:
        """``config`` broke (a worker died, a timeout): never tried again; the search goes on
        from the best config that ran, or the baseline."""
        self.broken[self._as_proposed(config)] = reason
        best = pick([s for s in self.summaries() if s.config not in self.broken])
        fallback = best.chosen.config if best else LoaderConfig()
        self.running = self._as_run(self.space.constrain(fallback) or LoaderConfig())
        return self.running

    def conclude(self) -> None:
        """The job's last planned epoch ended while still exploring: settle on the best
        measured, so the pick is said and remembered (as unfinished: the next run searches
        on from it instead of only verifying it)."""
        if self.settled is None:
            self.finished = False
            self._settle()

    def _move(self, stage: Trial) -> LoaderConfig | None:
        self._keep(stage)
        again = self._cold_baseline()
        if again is not None:
            self.running = self._as_run(again)
            return self.running
        if self._verified():
            return self._settle()
        proposal = self._proposal() if self._worth_exploring() else None
        if proposal is not None:
            self.running = self._as_run(proposal)
            return self.running
        return self._settle()

    def _as_run(self, config: LoaderConfig) -> LoaderConfig:
        """What runs for ``config``: with persistent workers when more epochs follow and the
        user left the knob open, so a stretch that crosses an epoch starts no workers again."""
        if self._persistence_is_ours(config):
            return dataclasses.replace(config, persistent_workers=True)
        return config

    def _as_proposed(self, config: LoaderConfig) -> LoaderConfig:
        """The inverse of :meth:`_as_run`: the config the strategy proposed."""
        if self._persistence_is_ours(config):
            return dataclasses.replace(config, persistent_workers=False)
        return config

    def _persistence_is_ours(self, config: LoaderConfig) -> bool:
        """Whether the search, not the strategy, sets ``config``'s persistent_workers."""
        fixed = "persistent_workers" in self.space.fixed
        return self.epochs > 1 and bool(config.num_workers) and not fixed

    def _keep(self, stage: Trial) -> None:
        """A snapshot of the stretch as judged (the live one still records its drain; one
        another rank sent is its own snapshot already)."""
        kept = snapshot(stage, self.cpu_now)
        kept.config = self._as_proposed(stage.config)
        if kept.step_end_s and kept.batches:
            per_batch = [per_batch_s(t) for t in self.trials]
            best_s = min(per_batch, default=per_batch_s(kept))
            self.lost_s += max(0.0, kept.step_end_s[-1] - kept.batches * best_s)
        self.trials.append(kept)

    def summaries(self) -> list[Summary]:
        groups: dict[LoaderConfig, list[Trial]] = {}
        for trial in self.trials:
            if trial.config in self.broken:
                continue
            groups.setdefault(trial.config, []).append(trial)
        return [Summary(c, tuple(ts), self.epochs) for c, ts in groups.items()]

    def _proposal(self) -> LoaderConfig | None:
        history = _Seen(self.summaries(), dict(self.broken), passed=frozenset(self._passed()))
        jump = self._jump()
        if jump is not None and jump not in history.tried:
            return jump
        strategy = self._strategy()
        lightning = strategy.lightning()
        for _ in range(32):  # the strategy's proposals, until one the user's knobs allow
            config = strategy.propose(history)
            if config is None:
                return None
            allowed = self.space.constrain(config)
            if config != lightning and allowed is not None and allowed not in history.tried:
                return allowed
            history = _Seen(history.summaries, history.rejected, passed=history.passed | {config})
        return None

    def _passed(self) -> set[LoaderConfig]:
        """Configs not worth a stretch: the strategy's anchor at one worker per CPU once a
        jump from the baseline went past it (a stretch there would cost the job time to
        learn what the jump showed)."""
        measured = [t.config.num_workers for t in self.trials]
        if measured and max(measured) > self.usable_cpus:
            return {LoaderConfig(self.usable_cpus)}
        return set()

    def _jump(self) -> LoaderConfig | None:
        """From a baseline without workers, where the model points: its wait per batch is
        what a worker spends making one, its step the main loop's own work, its CPU seconds
        per batch what each worker needs; the batches left bound the workers worth starting."""
        if len(self.trials) != 1 or self.trials[0].config.num_workers:
            return None
        trial = self.trials[0]
        make_s, busy_s = wait_per_batch_s(self.summaries()[0]), step_per_batch_s(trial)
        cpu_s = cpu_per_batch_s(trial, less_s=CPU_TICK_S)  # at most: from one batch, a
        # reading of 0.02 s may be 0.011 used, and the jump would start half the workers
        if cpu_s is None or make_s == float("inf"):
            return None
        left = (self.batches or trial.batches) * self.epochs
        fit = LoaderFit(1, make_s, busy_s, cpu_s, STARTUP_PER_WORKER_S, left)
        workers = min(fit.suggested_workers(self.usable_cpus), self.max_workers)
        return self.space.constrain(LoaderConfig(workers)) if workers > 1 else None

    def _cold_baseline(self) -> LoaderConfig | None:
        """The baseline to run again, as a whole stretch, where it was judged from too few
        batches to rank and the jump's workers each made a batch :data:`COLD_FACTOR` faster
        than its batches took (its first batch paid for a cold start, not for the data)."""
        if len(self.trials) != 2:
            return None
        baseline, jumped = self.trials
        quick = not baseline.config.num_workers and baseline.batches < MIN_STRETCH_BATCHES
        quick = quick and bool(jumped.config.num_workers)
        make_s = worker_batch_s(jumped)
        if not quick or make_s is None or COLD_FACTOR * make_s >= per_batch_s(baseline):
            return None
        log.info("the first batches without workers were cold: measuring them again")
        self.trials.pop(0)
        return baseline.config

    def _strategy(self) -> Adaptive:
        start = self.start or self.space.constrain(LoaderConfig()) or LoaderConfig()
        baseline = self._as_proposed(start)
        return Adaptive(
            usable_cpus=self.usable_cpus,
            max_workers=self.max_workers,
            epochs=1,  # persistence is ours to add (see _as_run), not a stretch of its own
            baseline=baseline,
            unordered_ok=self.space.unordered_ok,
            start_methods=self.space.start_methods,
            cuda=self.space.cuda,
        )

    def _worth_exploring(self) -> bool:
        """Exploring has time left, and what another config could take off each batch repays
        a probe over the batches the job has left (a worker start and a stretch)."""
        best = pick(self.summaries())
        if best is None or best.chosen.planned_s is None:
            return True
        gain_s = self._gain_per_batch_s(best.chosen)
        if gain_s <= 0:
            return False
        left = self._batches_left()
        probe_s = self._startup_s() + PROBE_RISK * MIN_STRETCH_S
        if left is not None and gain_s * left < WORTH_STARTUPS * probe_s:
            # the job ends too soon to try more: unfinished, if there was more to try
            self.finished = self.finished and self._proposal() is None
            return False
        return self.lost_s < EXPLORE_SHARE * best.chosen.planned_s.median

    def _gain_per_batch_s(self, best: Summary) -> float:
        """The most another config could take off each of ``best``'s batches: what its step
        still waits for a batch, beyond what receiving a batch from a worker costs, and no
        more than its time per batch above the floor its CPU work sets (the CPU seconds a
        batch takes, main process and workers, spread over every usable CPU: a loader whose
        workers keep every CPU busy cannot go faster, however many more it starts)."""
        waited = wait_per_batch_s(best) - MIN_WORKER_BATCH_S
        steady = [steady_per_batch_s(t) for t in best.trials]
        cpu = [c for c in (cpu_per_batch_s(t) for t in best.trials) if c is not None]
        if not cpu or not steady:
            return waited
        floor_s = statistics.median(cpu) / max(self.usable_cpus, 1)
        return min(waited, statistics.median(steady) - floor_s)

    def _batches_left(self) -> int | None:
        if self.batches is None:
            return None
        return max(self.batches * self.epochs - self.seen, 0)

    def _verified(self) -> bool:
        """The cached start ran as fast as it did when it was picked (within
        :data:`VERIFY_BAND`): no search needed."""
        if self.expected_batch_s is None or len(self.trials) != 1:
            return False
        return steady_per_batch_s(self.trials[0]) <= VERIFY_BAND * self.expected_batch_s

    def _startup_s(self) -> float:
        """What starting workers costs: the cheapest stretch with workers measured, else a
        forked worker's typical start."""
        started = [t.startup_s for t in self.trials if t.config.num_workers and t.startup_s]
        return min(started, default=STARTUP_PER_WORKER_S * 2)

    def _settle(self) -> LoaderConfig | None:
        chosen = pick(self.summaries())
        if chosen is None:
            return None
        self.settled = chosen
        config = self._as_run(chosen.chosen.config)
        if config == self.running:
            return None
        self.running = config
        return config
