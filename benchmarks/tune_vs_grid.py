"""Does `tune` reach the exhaustive grid's best, in a fraction of the grid's time?

For five workload kinds (in-memory tiny rows with the classic step; pure-Python CPU work;
Pillow JPEG decode and crop; storage latency; a training step heavier than loading) this
script times whole epochs by hand (the classic recipe: a fresh DataLoader, ``for batch in
loader: step(batch)``) at every worker count of the grid, in interleaved rounds, and runs
``loadertune.tune`` between the rounds, so drift hits both alike. It reports, per workload:

- the pick's hand-timed epoch over the grid's best (target <= 1.05);
- tune's wall time over the grid's (one round of whole epochs; target <= 0.25);
- the pick against the two common rules (one worker per usable CPU; Lightning's CPUs - 1).

    python benchmarks/tune_vs_grid.py            # full run, rewrites its RESULTS.md section
    python benchmarks/tune_vs_grid.py --quick    # small smoke run, prints only
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from torch.utils.data import DataLoader, Dataset

import workloads
from loadertune import LoaderConfig, Workload, tune
from loadertune.engine.machine import machine_facts
from loadertune.tuning.strategy import worker_grid
from results_file import RESULTS_PATH, write_section

SECTION = "## Tune vs exhaustive grid"
GRID_MAX_WORKERS = 32
TARGET_EPOCH_RATIO = 1.05
TARGET_TIME_RATIO = 0.25
TUNE_SHARE = 0.2  # tune's budget: at least this share of the grid round measured just before
FRESH_PAIRS = 10  # head-to-head epochs of the pick and the grid's best, when they differ: with
# 16-18% noise per epoch here, 6 a side left the ratio about +-7% uncertain, too coarse for 5%


@dataclass(frozen=True)
class Case:
    name: str
    dataset: Callable[[int], Dataset[Any]]
    step: Callable[[], Callable[[Any], Any] | None]
    samples: int
    batch_size: int
    budget_s: float


def cases(quick: bool) -> list[Case]:
    scale = 4 if quick else 1
    return [
        Case(
            "tiny rows",
            lambda n: workloads.make("tiny", n),
            workloads.ClassicStep,
            12800 // scale,
            64,
            2,  # its grid round takes ~8 s: a quarter of that fits w=0 and w=2, enough here
        ),
        Case(
            "pure-Python CPU",
            lambda n: workloads.make("pycpu", n),
            lambda: None,
            6400 // scale,
            32,
            8,
        ),
        Case(
            "JPEG decode", lambda n: workloads.make("jpeg", n), lambda: None, 3200 // scale, 32, 12
        ),
        Case(
            "storage latency",
            lambda n: workloads.make("storage", n),
            lambda: None,
            3200 // scale,
            32,
            10,
        ),
        Case(
            "heavy step",
            lambda n: workloads.make("tiny", n),
            workloads.HeavyStep,
            3200 // scale,
            32,
            8,
        ),
    ]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hand_epoch_s(
    dataset: Dataset[Any], step: Callable[[Any], Any] | None, config: LoaderConfig, batch_size: int
) -> float:
    """One whole epoch, the classic recipe: fresh loader, every batch through the step."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, **config.to_kwargs())
    gc.collect()  # as tune does before a trial: no collection falls due mid-fork
    start = time.perf_counter()
    for batch in loader:
        if step is not None:
            step(batch)
    return time.perf_counter() - start


@dataclass
class Outcome:
    case: Case
    epochs: dict[LoaderConfig, list[float]] = field(default_factory=dict)  # the grid's rounds
    fresh: dict[LoaderConfig, list[float]] = field(default_factory=dict)  # the head-to-head
    round_s: list[float] = field(default_factory=list)
    tune_s: float = 0.0
    budget_s: float = 0.0
    pick: LoaderConfig | None = None
    tune_trials: int = 0
    stopped_by_budget: bool = False

    def median(self, config: LoaderConfig) -> float:
        return statistics.median(self.epochs[config])

    def grid_best(self) -> LoaderConfig:
        """The best of the grid itself (a pick off the grid is timed beside it, not in it)."""
        grid = [LoaderConfig(n) for n in worker_grid(GRID_MAX_WORKERS)]
        return min((c for c in grid if c in self.epochs), key=self.median)


def run_case(case: Case, rounds: int) -> Outcome:
    dataset, step = case.dataset(case.samples), case.step()
    grid = [LoaderConfig(n) for n in worker_grid(GRID_MAX_WORKERS)]
    outcome = Outcome(case)
    hand_epoch_s(dataset, step, LoaderConfig(), case.batch_size)  # warm caches and imports
    for r in range(rounds):
        order = grid[r % len(grid) :] + grid[: r % len(grid)]
        outcome.round_s.append(sum(_timed(outcome, dataset, step, c, case) for c in order))
        if r == 0:
            _tune(outcome, dataset, step, max(case.budget_s, TUNE_SHARE * outcome.round_s[0]))
    _head_to_head(outcome, dataset, step)
    return outcome


def _head_to_head(outcome: Outcome, dataset: Dataset[Any], step: Any) -> None:
    """Fresh epochs of the pick and the grid's best, alternating which goes first. The grid's
    best was chosen on the grid's own epochs, as the lowest of 11 noisy medians, so those
    flatter it (the winner's curse); epochs it was not chosen on compare it fairly."""
    best, pick = outcome.grid_best(), outcome.pick
    if pick is None or pick == best:
        return
    for k in range(FRESH_PAIRS):
        for config in (pick, best) if k % 2 == 0 else (best, pick):
            outcome.fresh.setdefault(config, []).append(
                _timed(outcome, dataset, step, config, outcome.case, record=False)
            )


def _timed(
    outcome: Outcome,
    dataset: Dataset[Any],
    step: Any,
    config: LoaderConfig,
    case: Case,
    *,
    record: bool = True,
) -> float:
    seconds = hand_epoch_s(dataset, step, config, case.batch_size)
    if record:
        outcome.epochs.setdefault(config, []).append(seconds)
    log(f"  {case.name}: {config.label():>14} {seconds:7.3f} s")
    return seconds


def _tune(outcome: Outcome, dataset: Dataset[Any], step: Any, budget_s: float) -> None:
    case = outcome.case
    workload = Workload(dataset, step=step, batch_size=case.batch_size, name=case.name)
    start = time.perf_counter()
    result = tune(workload, budget_s=budget_s)
    outcome.budget_s = budget_s
    outcome.tune_s = time.perf_counter() - start
    outcome.pick = result.best.config if result.best else None
    outcome.tune_trials = len(result.trials)
    outcome.stopped_by_budget = bool((result.tuning or {}).get("stopped_by_budget"))
    picked = outcome.pick.label() if outcome.pick else None
    log(f"  {case.name}: tune picked {picked} in {outcome.tune_s:.1f} s")


def row(outcome: Outcome, usable_cpus: int) -> str:
    best, pick = outcome.grid_best(), outcome.pick
    if pick is None:
        return f"| {outcome.case.name} | - | - | no pick | | | | | | | |"
    pick_epochs = outcome.epochs.get(pick) or outcome.fresh[pick]  # off the grid: fresh only
    pick_s = statistics.median(pick_epochs)
    grid_s = statistics.median(outcome.round_s)
    rules = [LoaderConfig(usable_cpus), LoaderConfig(max(usable_cpus - 1, 0))]
    gains = [outcome.median(r) / pick_s for r in rules]
    cut = ", budget-cut" if outcome.stopped_by_budget else ""
    return (
        f"| {outcome.case.name} | {best.label()} {outcome.median(best):.3f} s | "
        f"{pick.label()} {pick_s:.3f} s {_spread(pick_epochs)} | "
        f"**{pick_s / outcome.median(best):.3f}** | {_fresh_ratio(outcome)} | "
        f"{_grid_noise(outcome):.0%} | "
        f"{outcome.tune_s:.1f} s of {outcome.budget_s:.1f} s ({outcome.tune_trials} trials{cut}) | "
        f"{grid_s:.1f} s | **{outcome.tune_s / grid_s:.2f}** | {gains[0]:.2f}x | {gains[1]:.2f}x |"
    )


def _fresh_ratio(outcome: Outcome) -> str:
    """The pick over the grid's best on fresh alternating epochs (same config: 1 by itself)."""
    best, pick = outcome.grid_best(), outcome.pick
    if pick is None or pick == best:
        return "same config"
    ratio = statistics.median(outcome.fresh[pick]) / statistics.median(outcome.fresh[best])
    return f"**{ratio:.3f}** ({FRESH_PAIRS} each)"


def _grid_noise(outcome: Outcome) -> float:
    """Half the relative range of a grid config's epochs, median over the grid."""
    spreads = [
        (max(v) - min(v)) / statistics.median(v) / 2 for v in outcome.epochs.values() if len(v) > 1
    ]
    return statistics.median(spreads) if spreads else 0.0


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / mid * 50:.0f}%"


def section(outcomes: list[Outcome], argv: list[str], rounds: int) -> str:
    facts = machine_facts()
    cpus = facts.cpus.usable
    head = (
        "| workload | grid best (median epoch) | tune's pick (median epoch, ±half range) | "
        "pick / grid best (grid's epochs) | pick / grid best (fresh head-to-head) | grid noise | "
        "tune wall of budget | grid wall (1 round) | tune / grid | "
        f"pick vs w={cpus} (one per CPU) | pick vs w={max(cpus - 1, 0)} (Lightning) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    rows = "\n".join(row(o, cpus) for o in outcomes)
    return (
        f"{SECTION}\n\n"
        f"Command: `python {' '.join(['benchmarks/tune_vs_grid.py', *argv])}`, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
        f"Machine: {facts.cpus.usable} usable CPUs ({facts.cpus.how}), "
        f"{facts.total_memory_bytes / 2**30:.1f} GiB, Python {facts.python_version}, "
        f"torch {facts.torch_version}.\n\n"
        f"Grid: whole epochs timed by hand at num_workers {worker_grid(GRID_MAX_WORKERS)}, "
        f"{rounds} interleaved rounds (medians); `tune` (adaptive, default settings) ran "
        f"between the first and second rounds with a budget of {TUNE_SHARE:.0%} of the first "
        "round's wall time (at least the case's own minimum). Epoch ratios are medians of "
        "hand-timed whole epochs, never tune's own figures. The grid's best is the lowest of "
        "11 noisy medians, so its own epochs flatter it (the winner's curse); where the pick "
        f"differs, both are timed again, {FRESH_PAIRS} fresh epochs each, alternating which "
        "goes first, and that head-to-head compares them on epochs neither was chosen on "
        "(a pick off the grid has only those). Grid noise: half the relative range of a "
        "config's epochs, median over the grid. Targets: pick / grid best <= "
        f"{TARGET_EPOCH_RATIO}, tune / grid <= {TARGET_TIME_RATIO}.\n\n"
        f"{head}\n{rows}\n"
    )


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # on purpose
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small datasets, 1 round, print only")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved grid rounds (default 3)")
    parser.add_argument("--only", help="run only the workload whose name contains this")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    chosen = [c for c in cases(args.quick) if not args.only or args.only in c.name]
    outcomes = []
    for case in chosen:
        log(f"{case.name}: {case.samples} samples, batch {case.batch_size}, {case.budget_s} s")
        outcomes.append(run_case(case, rounds))
    text = section(outcomes, sys.argv[1:] if argv is None else argv, rounds)
    print(text)
    if not args.quick and not args.only:
        write_section(RESULTS_PATH, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
