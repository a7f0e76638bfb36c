"""Does ``loadertune.DataLoader``, tuning itself in the user's loop, match the best fixed config?

For five workload kinds (``tiny``, ``pycpu``, ``storage``, ``jpeg`` from ``workloads.py``, and a
Hugging Face ``datasets.Dataset`` built locally with numpy, torch format) and for jobs of 1, 3
and 10 epochs, this times whole jobs (from creating the loader to the end of the last epoch,
worker shutdown included) of:

- every fixed config of a grid: ``torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True,
  num_workers=n, persistent_workers=n > 0)``, timed as prefixes of one 10-epoch job per config
  and round: the job of E epochs takes the elapsed time at the end of epoch E plus the worker
  shutdown at the end. A job stops once its elapsed time passes 2x the best that an earlier
  job of the kind had at the end of the same epoch (checked after every batch), so a config
  over 2x slower costs about two of the best's epochs, not ten of its own; its times for the
  epochs it did not finish are lower bounds. The baseline is the best config that finished E
  epochs in every round;
- ``loadertune.DataLoader(ds, batch_size=64, shuffle=True, epochs=E, cache=True)``, one job per
  E, from an empty cache (a fresh ``LOADERTUNE_CACHE_DIR``), then from the cache it wrote.

Epochs are long enough to tune in: about 1.5-2 s at the best fixed config on 2 cores, and at
least 60 batches (see :class:`Plan`). Round 0 runs the grid fastest first by a pilot (each
config's first 8 batches), as nothing can cut off the first job; later rounds rotate that
order, and the online jobs are interleaved with the fixed ones, rotated too. Every sample
carries its index, and every epoch of every job is audited: the indices seen must be exactly
``range(len(ds))`` (and, in one unshuffled online job per kind, in that order).

    python benchmarks/online.py            # full run (~27 min on 2 idle cores), rewrites it
    python benchmarks/online.py --quick    # 1/4 data, 1 and 3 epochs, 1 round; prints only
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import numpy as np
from torch.utils.data import DataLoader, Dataset

import loadertune
import workloads
from epoch_accuracy import engine_fingerprint
from results_file import finish, provenance

SECTION = "## Online DataLoader vs the best fixed config"
BATCH_SIZE = 64
GRID = (0, 1, 2, 4, 8, 16)
STORAGE_GRID = (*GRID, 32)  # 4 ms of waiting per sample keeps paying past 16 workers
CUTOFF = 2.0  # a fixed job stops past 2x the best elapsed time known at the same epoch count
PILOT_BATCHES = 8  # round 0's order: each fixed config's time to its first 8 batches
CACHE_ENV = "LOADERTUNE_CACHE_DIR"
EMPTY_BAR = 1.10  # online from an empty cache, jobs of 3+ epochs: within 10% of the best fixed
CACHED_BAR = 1.03  # from the cache: it starts on the pick, so only the switch machinery costs
TINY_BAR = (1.2, 0.3)  # in memory, where workers never pay: never worse than 1.2x + 0.3 s
AUDIT_EPOCHS = 2  # the unshuffled audit job
HF_FEATURES = 32
EMPTY, CACHED = "online", "online, cached"

T = TypeVar("T")
Step: TypeAlias = Callable[[Any], Any] | None
Item: TypeAlias = int | tuple[int, str]  # a fixed config's long job, or an online (E, variant)


@dataclass(frozen=True)
class Plan:
    """Samples per kind, job lengths in epochs, and rounds.

    An online tuner measures inside the epoch, and a config with 32 workers needs batches to
    share, so the full plan sizes every kind for at least 60 batches of 64 and for one epoch of
    about 1.5-2 s at the best fixed config, measured on the 2-core VM: tiny 640k rows 1.7 s at
    w=0 (its worker configs are ~10x slower, IPC per row, but the cutoff stops them after ~3 s);
    pycpu 3840 (60 batches) 2.1-2.2 s at w=2-4; storage 8192 (128 batches; w=0 would take 33 s)
    1.5 s at w=32; hf 150k rows 1.7 s at w=0. jpeg, ~0.9 ms a sample on 2 cores, cannot have
    both: 3840 samples keep the 60 batches and take 3.2-3.5 s at w=2. With the cutoff, 2 rounds
    take ~27 min (estimated from a --quick run). ``--quick`` takes a quarter."""

    samples: dict[str, int]
    epochs: tuple[int, ...]
    rounds: int


FULL = Plan(
    {"tiny": 640_000, "pycpu": 3_840, "storage": 8_192, "jpeg": 3_840, "hf": 150_000},
    (1, 3, 10),
    2,
)
QUICK = Plan({kind: n // 4 for kind, n in FULL.samples.items()}, (1, 3), 1)


class Indexed(Dataset[Any]):
    """``inner``'s samples as ``(index, sample)``: the default collate makes the first element
    of each batch a tensor of the indices, which the audit reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.inner[index]


class IndexedBatched(Indexed):
    """As :class:`Indexed`, keeping the inner dataset's ``__getitems__`` (Hugging Face reads a
    batch of rows in one call; hiding that would bench a slower workload than users run)."""

    def __getitems__(self, indices: list[int]) -> list[tuple[int, Any]]:
        return list(zip(indices, self.inner.__getitems__(indices), strict=True))


def hf_rows(samples: int) -> Any:
    """An in-memory ``datasets.Dataset``: 32 float32 features (one list column) and a label."""
    import datasets

    rng = np.random.default_rng(0)
    columns = {
        "features": rng.standard_normal((samples, HF_FEATURES), dtype=np.float32),
        "label": rng.integers(0, 2, samples),
    }
    return datasets.Dataset.from_dict(columns).with_format("torch")


def make_dataset(kind: str, samples: int) -> Indexed:
    if kind == "hf":
        return IndexedBatched(hf_rows(samples))
    return Indexed(workloads.make(kind, samples))


def step_of(kind: str) -> Step:
    return None if kind == "hf" else workloads.default_step(kind)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- fixed configs: one long job per config and round, timed at every epoch's end ----------


@dataclass(frozen=True)
class Timing:
    """A fixed config's time for a job of E epochs: exact, or a lower bound (cut off first)."""

    seconds: float
    exact: bool


@dataclass
class FixedJob:
    """One long job of a fixed config: the elapsed time at the end of each epoch it finished,
    their indices, where the cutoff stopped it (None: it ran every epoch), its worker shutdown."""

    workers: int
    ends: list[float] = field(default_factory=list)
    seen: list[list[int]] = field(default_factory=list)
    cut_s: float | None = None
    shutdown_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def timing(self, epochs: int) -> Timing:
        """The job of ``epochs`` epochs: its prefix plus the shutdown, else the cutoff's bound."""
        if epochs <= len(self.ends):
            return Timing(self.ends[epochs - 1] + self.shutdown_s, exact=True)
        return Timing(self.cut_s if self.cut_s is not None else math.nan, exact=False)


def fixed_loader(dataset: Indexed, workers: int) -> DataLoader[Any]:
    return DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def stop_workers(loader: DataLoader[Any]) -> float:
    """Seconds to stop a persistent loader's workers: what deleting its iterator does, done now
    so the clock includes it (nothing to stop at num_workers=0)."""
    start = time.perf_counter()
    if loader._iterator is not None:
        loader._iterator._shutdown_workers()  # type: ignore[attr-defined]
    return time.perf_counter() - start


def fixed_epoch(loader: Any, step: Step, start: float, limit_s: float) -> tuple[list[int], bool]:
    """One epoch's indices, and whether the job's elapsed time passed ``limit_s`` (checked after
    every batch; the epoch stops there)."""
    seen: list[int] = []
    for indices, sample in loader:
        seen.extend(indices.tolist())
        if step is not None:
            step(sample)
        if time.perf_counter() - start > limit_s:
            return seen, True
    return seen, False


def fixed_job(
    dataset: Indexed, step: Step, workers: int, epochs: int, best_ends: dict[int, float]
) -> FixedJob:
    """``epochs`` epochs of one loader, cut off past CUTOFF x ``best_ends`` (the best elapsed
    time known at the end of each epoch count; none known: no cutoff)."""
    job = FixedJob(workers)
    gc.collect()  # no collection falls due mid-fork, for every job alike
    start = time.perf_counter()
    loader = fixed_loader(dataset, workers)
    for epoch in range(1, epochs + 1):
        seen, cut = fixed_epoch(loader, step, start, CUTOFF * best_ends.get(epoch, math.inf))
        elapsed = time.perf_counter() - start
        if cut:
            job.cut_s = elapsed
            break
        job.ends.append(elapsed)
        job.seen.append(seen)
    job.shutdown_s = stop_workers(loader)
    return job


def pilot_s(dataset: Indexed, step: Step, workers: int) -> float:
    """A fixed config's time to its first PILOT_BATCHES batches, startup included."""
    gc.collect()
    start = time.perf_counter()
    loader = fixed_loader(dataset, workers)
    try:
        for _, sample in itertools.islice(loader, PILOT_BATCHES):
            if step is not None:
                step(sample)
        return time.perf_counter() - start
    finally:
        stop_workers(loader)


def pilot_order(dataset: Indexed, step: Step, grid: tuple[int, ...]) -> list[int]:
    """The grid sorted by :func:`pilot_s`: round 0's order, so that its first job, which
    nothing can cut off, is likely a fast one. It also warms the dataset and the workers' code."""
    times: dict[int, float] = {}
    for workers in grid:
        try:
            times[workers] = pilot_s(dataset, step, workers)
        except Exception:
            log(traceback.format_exc())  # its real job will fail too, and be reported
            times[workers] = math.inf
    log("  pilot: " + ", ".join(f"w={n} {times[n]:.3f} s" for n in grid))
    return sorted(grid, key=times.__getitem__)


# ---- online jobs: the user's loop, timed from the loader's creation to its workers' end -----


@dataclass
class Job:
    """One timed online job: its wall time, the indices each epoch delivered, and its pick."""

    seconds: float
    seen: list[list[int]]
    pick: str = ""
    pick_workers: int | None = None  # the pick's num_workers, to look it up in the grid
    stretches: int = 0
    cache_files: int = 0
    problems: list[str] = field(default_factory=list)


def drive(loader: Any, epochs: int, step: Step) -> list[list[int]]:
    seen = []
    for _ in range(epochs):
        epoch: list[int] = []
        for indices, sample in loader:
            epoch.extend(indices.tolist())
            if step is not None:
                step(sample)
        seen.append(epoch)
    return seen


def online_job(
    dataset: Indexed, step: Step, epochs: int, cache_dir: Path, *, shuffle: bool = True
) -> Job:
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(cache_dir)
    gc.collect()
    start = time.perf_counter()
    loader = loadertune.DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=shuffle, epochs=epochs, cache=True
    )
    try:
        seen = drive(loader, epochs, step)
    finally:
        loader.close()
    seconds = time.perf_counter() - start
    job = Job(seconds, seen, cache_files=sum(1 for p in cache_dir.rglob("*") if p.is_file()))
    tuning = loader.tuning
    best = tuning.best if tuning is not None else None
    if best is not None:
        job.pick, job.pick_workers = best.config.label(), best.config.num_workers
    job.stretches = len(tuning.trials) if tuning is not None else 0
    return job


def audit(seen: list[list[int]], samples: int, epochs: int, *, ordered: bool = False) -> list[str]:
    """What went wrong with exactly-once delivery, one line per bad epoch (empty: all good)."""
    problems = []
    if len(seen) != epochs:
        problems.append(f"{len(seen)} epochs delivered, {epochs} asked")
    expected = list(range(samples))
    for epoch, indices in enumerate(seen):
        if ordered and indices == expected:
            continue
        distinct = set(indices)
        missing = sum(1 for i in expected if i not in distinct)
        extra = len(indices) - (samples - missing)  # repeats and out-of-range indices
        if missing or extra:
            problems.append(
                f"epoch {epoch}: {len(indices)} indices, {missing} missing, {extra} extra"
            )
        elif ordered:
            problems.append(f"epoch {epoch}: every index once, but not in order 0..N-1")
    return problems


# ---- one kind: the pilot, then interleaved rounds of the grid and the online jobs -----------


@dataclass
class KindRun:
    """Everything measured for one kind: a long job per fixed config and round, the online
    jobs per (E, variant), round 0's order, the unshuffled audit's verdict, what raised."""

    kind: str
    samples: int
    epochs: tuple[int, ...]
    rounds: int
    fixed: dict[int, list[FixedJob]]
    online: dict[tuple[int, str], list[Job]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    ordered: str = ""
    errors: list[str] = field(default_factory=list)

    def best_ends(self) -> dict[int, float]:
        """The lowest elapsed time at the end of each epoch count over the jobs so far."""
        best: dict[int, float] = {}
        for job in itertools.chain.from_iterable(self.fixed.values()):
            for epochs, elapsed in enumerate(job.ends, start=1):
                best[epochs] = min(best.get(epochs, math.inf), elapsed)
        return best

    def problems(self) -> list[str]:
        """Every audit problem of its jobs, fixed then online."""
        fixed = itertools.chain.from_iterable(self.fixed.values())
        online = itertools.chain.from_iterable(self.online.values())
        return [p for job in fixed for p in job.problems] + [
            p for job in online for p in job.problems
        ]

    def fail(self, label: str, error: Exception) -> None:
        log(traceback.format_exc())
        self.errors.append(f"{label}: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class Cell:
    """One row of the tables: a kind's jobs of ``epochs`` epochs."""

    run: KindRun
    epochs: int

    @property
    def kind(self) -> str:
        return self.run.kind

    def batches(self) -> int:
        return math.ceil(self.run.samples / BATCH_SIZE)

    def timings(self, workers: int) -> list[Timing]:
        return [job.timing(self.epochs) for job in self.run.fixed.get(workers, [])]

    def finished(self, workers: int) -> bool:
        """Whether the config finished this many epochs in every round (a known median)."""
        timings = self.timings(workers)
        return len(timings) == self.run.rounds and all(t.exact for t in timings)

    def median(self, workers: int) -> float:
        return statistics.median(t.seconds for t in self.timings(workers))

    def best_fixed(self) -> int | None:
        done = [n for n in self.run.fixed if self.finished(n)]
        return min(done, key=self.median) if done else None

    def best_s(self) -> float:
        """Median job time of the best fixed config (NaN: none finished every round)."""
        best = self.best_fixed()
        return self.median(best) if best is not None else float("nan")

    def online(self, variant: str) -> list[Job]:
        return self.run.online.get((self.epochs, variant), [])

    def online_s(self, variant: str) -> float:
        times = [job.seconds for job in self.online(variant)]
        return statistics.median(times) if times else float("nan")

    def online_jobs(self) -> list[Job]:
        return self.online(EMPTY) + self.online(CACHED)


def rotated(items: Sequence[T], round_: int, rounds: int) -> list[T]:
    shift = round_ * len(items) // max(rounds, 1)
    return [*items[shift:], *items[:shift]]


def round_items(order: list[int], epochs: tuple[int, ...], round_: int, rounds: int) -> list[Item]:
    """Round ``round_``'s jobs: the fixed configs in the pilot's order rotated by a share of it
    per round (round 0 starts with the fastest; later rounds have every epoch's best from round
    0 to cut off against), alternating with the online jobs: each E's empty-cache job, then its
    cached one (which reads that cache), the E's rotated alike."""
    fixed: list[Item] = [*rotated(order, round_, rounds)]
    online: list[Item] = [
        (e, variant) for e in rotated(epochs, round_, rounds) for variant in (EMPTY, CACHED)
    ]
    items: list[Item] = []
    for i in range(max(len(fixed), len(online))):
        items += fixed[i : i + 1] + online[i : i + 1]
    return items


def run_fixed(run: KindRun, dataset: Indexed, step: Step, workers: int, *, round_: int) -> None:
    label = f"w={workers} round {round_}"
    try:
        job = fixed_job(dataset, step, workers, max(run.epochs), run.best_ends())
    except Exception as error:
        run.fail(label, error)
        return
    finished = max(run.epochs) if job.cut_s is None else len(job.ends)
    job.problems = [f"{label}: {p}" for p in audit(job.seen, run.samples, finished)]
    run.fixed[workers].append(job)
    ends = " ".join(f"{t:.2f}" for t in job.ends) or "-"
    cut = f", cut off at {job.cut_s:.3f} s" if job.cut_s is not None else ""
    flag = f" AUDIT FAILED: {job.problems}" if job.problems else ""
    log(
        f"  {run.kind} r{round_} w={workers:>2}: epochs end at {ends} s{cut}, "
        f"shutdown {job.shutdown_s:.3f} s{flag}"
    )


def run_online(
    run: KindRun, dataset: Indexed, step: Step, item: tuple[int, str], *, round_: int, root: Path
) -> None:
    epochs, variant = item
    label = f"{variant} E={epochs} round {round_}"
    cache_dir = root / f"{run.kind}-E{epochs}-round{round_}"
    try:
        job = online_job(dataset, step, epochs, cache_dir)
    except Exception as error:
        run.fail(label, error)
        return
    job.problems = [f"{label}: {p}" for p in audit(job.seen, run.samples, epochs)]
    run.online.setdefault(item, []).append(job)
    flag = f" AUDIT FAILED: {job.problems}" if job.problems else ""
    log(
        f"  {run.kind} r{round_} {variant:>14} E={epochs}: {job.seconds:7.3f} s pick {job.pick} "
        f"(stretches {job.stretches}, cache files {job.cache_files}){flag}"
    )


def unshuffled_audit(kind: str, dataset: Indexed, root: Path) -> str:
    """One online job with shuffle=False: every epoch must deliver 0..N-1 in order."""
    try:
        job = online_job(
            dataset, step_of(kind), AUDIT_EPOCHS, root / f"{kind}-ordered", shuffle=False
        )
    except Exception as error:
        log(traceback.format_exc())
        return f"**error** {type(error).__name__}: {error}"
    problems = audit(job.seen, len(dataset), AUDIT_EPOCHS, ordered=True)
    log(f"  {kind} unshuffled audit: {job.seconds:.3f} s, {problems or 'ok'}")
    return "; ".join(f"**{p}**" for p in problems) if problems else "ok"


def measure(kind: str, dataset: Indexed, plan: Plan, root: Path) -> KindRun:
    step, grid = step_of(kind), STORAGE_GRID if kind == "storage" else GRID
    run = KindRun(kind, len(dataset), plan.epochs, plan.rounds, {n: [] for n in grid})
    run.order = pilot_order(dataset, step, grid)
    for r in range(plan.rounds):
        for item in round_items(run.order, plan.epochs, r, plan.rounds):
            if isinstance(item, int):
                run_fixed(run, dataset, step, item, round_=r)
            else:
                run_online(run, dataset, step, item, round_=r, root=root)
    run.ordered = unshuffled_audit(kind, dataset, root)
    return run


# ---- rendering: reads the runs, measures nothing --------------------------------------------


def seconds_range(values: list[float]) -> str:
    if not values:
        return "failed"
    text = f"{statistics.median(values):.3f}"
    return text + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def timing_text(timings: list[Timing]) -> str:
    """The median job s; "> x" when a round was cut off first: the median of the rounds'
    values and bounds is a lower bound of the unknown median."""
    if not timings:
        return "-"
    median = statistics.median(t.seconds for t in timings)
    return f"{median:.3f}" if all(t.exact for t in timings) else f"> {median:.3f}"


def ratio(cell: Cell, variant: str) -> float | None:
    value = cell.online_s(variant) / cell.best_s()
    return None if math.isnan(value) else value  # NaN: a side with no successful job


def picks(cell: Cell, variant: str) -> str:
    """Each distinct pick, how many stretches it took, and its grid config's median job."""

    def one(job: Job) -> str:
        timings = cell.timings(job.pick_workers) if job.pick_workers is not None else []
        grid = f", grid w={job.pick_workers} {timing_text(timings)} s" if timings else ""
        noun = "stretch" if job.stretches == 1 else "stretches"
        return f"{job.pick or 'no pick'} ({job.stretches} {noun}{grid})"

    counts = Counter(one(job) for job in cell.online(variant))
    return ", ".join(p + (f" x{n}" if n > 1 else "") for p, n in counts.items()) or "-"


def main_row(cell: Cell) -> str:
    best = cell.best_fixed()
    fixed = (
        f"w={best} {seconds_range([t.seconds for t in cell.timings(best)])}"
        if best is not None
        else "none finished"
    )
    parts = [cell.kind, f"{cell.epochs}", f"{cell.run.samples}", f"{cell.batches()}", fixed]
    for variant, bar in (
        (EMPTY, EMPTY_BAR if cell.epochs >= 3 else math.inf),
        (CACHED, CACHED_BAR),
    ):
        value = ratio(cell, variant)
        mark = "" if value is None or value <= bar else " **over**"
        parts.append(seconds_range([job.seconds for job in cell.online(variant)]))
        parts.append(f"{value:.2f}{mark}" if value is not None else "-")
    parts.append(f"{picks(cell, EMPTY)}; cached: {picks(cell, CACHED)}")
    jobs = cell.online_jobs()
    bad = sum(len(job.problems) for job in jobs)
    delivered = sum(len(job.seen) for job in jobs)
    parts.append(f"**{bad} bad**" if bad else f"ok ({delivered} epochs)")
    return "| " + " | ".join(parts) + " |"


def grid_row(cell: Cell, columns: tuple[int, ...]) -> str:
    best = cell.best_fixed()
    texts = []
    for n in columns:
        text = timing_text(cell.timings(n))
        texts.append(f"**{text}**" if n == best else text)
    return f"| {cell.kind} | {cell.epochs} | " + " | ".join(texts) + " |"


def count(cells: list[Cell], good: Callable[[Cell], bool]) -> str:
    return f"{sum(1 for c in cells if good(c))} of {len(cells)}"


def fixed_jobs(runs: list[KindRun]) -> list[FixedJob]:
    return [job for run in runs for jobs in run.fixed.values() for job in jobs]


def online_jobs(runs: list[KindRun]) -> list[Job]:
    return [job for run in runs for jobs in run.online.values() for job in jobs]


def summary(runs: list[KindRun], cells: list[Cell]) -> str:
    scale, slack_s = TINY_BAR

    def under(variant: str, bar: float) -> Callable[[Cell], bool]:
        return lambda c: (ratio(c, variant) or float("inf")) <= bar

    def tiny_bar(variant: str) -> Callable[[Cell], bool]:
        return lambda c: c.online_s(variant) <= scale * c.best_s() + slack_s

    tiny = [c for c in cells if c.kind == "tiny"]
    long_jobs = [c for c in cells if c.epochs >= 3]
    fixed, online = fixed_jobs(runs), online_jobs(runs)
    bad = sum(len(run.problems()) for run in runs)
    fixed_epochs = sum(len(job.seen) for job in fixed)
    online_epochs = sum(len(job.seen) for job in online)
    errors = sum(len(run.errors) for run in runs)
    ordered_text = ", ".join(f"{run.kind} {run.ordered}" for run in runs)
    return (
        f"**Empty cache, E >= 3: {count(long_jobs, under(EMPTY, EMPTY_BAR))}"
        f" rows within {EMPTY_BAR:.2f}x; cached: {count(cells, under(CACHED, CACHED_BAR))} rows "
        f"within {CACHED_BAR:.2f}x; in memory (tiny) against {scale}x + {slack_s} s: empty cache "
        f"{count(tiny, tiny_bar(EMPTY))}, cached {count(tiny, tiny_bar(CACHED))}.** "
        f"Audit: {bad} bad epochs ({online_epochs} online epochs and {fixed_epochs} fixed-config "
        f"epochs delivered); unshuffled (E={AUDIT_EPOCHS}, order 0..N-1): {ordered_text}. "
        f"Jobs that raised: {errors}."
    )


def details(runs: list[KindRun]) -> str:
    lines = [f"- {run.kind} {e}" for run in runs for e in run.errors]
    lines += [f"- {run.kind} audit {p}" for run in runs for p in run.problems()]
    return ("Problems:\n\n" + "\n".join(lines) + "\n") if lines else ""


def render(runs: list[KindRun], plan: Plan, meta: dict[str, Any]) -> str:
    cells = [Cell(run, epochs) for run in runs for epochs in run.epochs]
    columns = STORAGE_GRID
    longest = max(plan.epochs)
    rounds = f"{plan.rounds} round" + ("s" if plan.rounds != 1 else "")
    pilot = "; ".join(f"{run.kind} " + ", ".join(map(str, run.order)) for run in runs)
    head = (
        "| kind | E | samples | batches / epoch | best fixed, job s (range) "
        "| online, empty cache | / best | online, cached | / best "
        "| online pick (stretches measured) | audit |\n"
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |"
    )
    grid_head = (
        "| kind | E | " + " | ".join(f"w={n}" for n in columns) + " |\n"
        "| --- | ---: |" + " ---: |" * len(columns)
    )
    return f"""{SECTION}

{provenance("online.py", meta["argv"])} Load average {meta["load"]}; total runtime \
{meta["runtime_s"]:.0f} s. Engine: sha256 of `src/loadertune/**/*.py` {meta["engine"]}.

Each job: create the loader, run E epochs of `for batch in loader: step(batch)` (no step: the
loader alone, as `workloads.default_step`), stop its workers; timed from creation to the end.
The full plan sizes each kind for at least 60 batches of 64 an epoch and about 1.5-2 s an epoch
at the best fixed config on the 2-core VM (jpeg: 60 batches take ~3.5 s); `--quick` takes a
quarter. Fixed configs: torch's `DataLoader(ds, batch_size=64, shuffle=True, num_workers=n,
persistent_workers=n > 0)` for n in {list(GRID)} (storage also 32), one {longest}-epoch job per
config and round, timed as prefixes: the job of E epochs is the elapsed time at the end of
epoch E plus the worker shutdown at the end (persistence changes nothing before the second
epoch starts, so E=1 is a fresh loader's one epoch). A job stops once its elapsed time passes
{CUTOFF:g}x the best that an earlier job of the kind (any round) had at the end of the same
epoch, checked after every batch: its times for the epochs it did not finish are lower bounds,
shown as "> x" (x: where it stopped, over {CUTOFF:g}x the best at that point and perhaps in an
earlier epoch; the median over the rounds of values and bounds), and it cannot be the best for
those E. The best is the lowest median among the configs that finished E epochs in every
round (the lowest of several noisy medians, which flatters it a little). Round 0 runs the grid
in the order of a pilot, each config's time to its first {PILOT_BATCHES} batches (fastest
first: {pilot}), since nothing can cut off its first job; later rounds rotate that order.
Online: `loadertune.DataLoader(ds, batch_size=64, shuffle=True, epochs=E, cache=True)`, a job
per E, first with an empty `{CACHE_ENV}`, then with the cache that job wrote. {rounds},
the fixed and online jobs interleaved, order rotated; medians with (min-max). Every
sample is returned as `(index, sample)`; each epoch's indices, fixed or online, must be exactly
`range(N)` (a cut-off job's unfinished epoch is not checked). hf: `datasets.Dataset.from_dict`
of numpy ({HF_FEATURES} float32 features, label), `.with_format("torch")`, read through its
`__getitems__`.

{head}
{chr(10).join(main_row(c) for c in cells)}

{summary(runs, cells)}

Every fixed config, median job s (the best in bold; "> x": cut off before E epochs):

{grid_head}
{chr(10).join(grid_row(c, columns) for c in cells)}

{details(runs)}"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/4 data, E 1 and 3, 1 round")
    parser.add_argument("--kinds", nargs="+", choices=sorted(FULL.samples), default=None)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    kinds = [k for k in base.samples if args.kinds is None or k in args.kinds]
    plan = Plan({k: base.samples[k] for k in kinds}, base.epochs, args.rounds or base.rounds)
    # Trying more workers than CPUs is the point here; DataLoader's warning about it is noise.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    began, load_start, engine = time.perf_counter(), os.getloadavg(), engine_fingerprint()
    runs: list[KindRun] = []
    saved = os.environ.get(CACHE_ENV)
    try:
        with tempfile.TemporaryDirectory(prefix="loadertune-online-") as folder:
            for kind, samples in plan.samples.items():
                log(f"{kind}: {samples} samples")
                runs.append(measure(kind, make_dataset(kind, samples), plan, Path(folder)))
    finally:
        if saved is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = saved
    load = f"(1 min) {load_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    engine_end = engine_fingerprint()  # the other side of a concurrent edit, if any
    if engine_end != engine:
        engine += f" at start, {engine_end} at end (the sources changed during the run)"
    meta = {"argv": argv, "runtime_s": time.perf_counter() - began, "load": load, "engine": engine}
    return finish(SECTION, render(runs, plan, meta), args.quick or bool(args.kinds))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
