"""Does ``loadertune.DataLoader``, tuning itself in the user's loop, match the best fixed config?

For five workload kinds (``tiny``, ``pycpu``, ``storage``, ``jpeg`` from ``workloads.py``, and a
Hugging Face ``datasets.Dataset`` built locally with numpy, torch format) and for jobs of 1, 3
and 10 epochs, this times whole jobs (from creating the loader to the end of the last epoch,
worker shutdown included) of:

- every fixed config of a grid: ``torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True,
  num_workers=n, persistent_workers=n > 0 and E > 1)``; the best of them is the baseline;
- ``loadertune.DataLoader(ds, batch_size=64, shuffle=True, epochs=E, cache=True)`` from an
  empty cache (a fresh ``LOADERTUNE_CACHE_DIR``), then again from the cache that job wrote.

Rounds interleave every config and both online jobs, rotating the order. Every sample carries
its index, and every epoch of every job is audited: the indices seen must be exactly
``range(len(ds))`` (and, in one unshuffled online job per kind, in that order).

    python benchmarks/online.py            # full run (~22 min on 2 cores), rewrites its section
    python benchmarks/online.py --quick    # smaller data, 1 and 3 epochs, 1 round; prints only
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
CACHE_ENV = "LOADERTUNE_CACHE_DIR"
EMPTY_BAR = 1.10  # online from an empty cache, jobs of 3+ epochs: within 10% of the best fixed
CACHED_BAR = 1.03  # from the cache: it starts on the pick, so only the switch machinery costs
TINY_BAR = (1.2, 0.3)  # in memory, where workers never pay: never worse than 1.2x + 0.3 s
AUDIT_EPOCHS = 2  # the unshuffled audit job
HF_FEATURES = 32
EMPTY, CACHED = "online", "online, cached"


@dataclass(frozen=True)
class Plan:
    """Samples per kind, job lengths in epochs, and rounds. Sized on the 2-core VM so one epoch
    at the best fixed config takes ~0.5 s; tiny ~0.25 s, as its worker configs take ~3 s an
    epoch (IPC per row) and a larger tiny would push the full run past 25 minutes."""

    samples: dict[str, int]
    epochs: tuple[int, ...]
    rounds: int


FULL = Plan(
    {"tiny": 80_000, "pycpu": 800, "storage": 768, "jpeg": 512, "hf": 32_000}, (1, 3, 10), 2
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


def step_of(kind: str) -> Callable[[Any], Any] | None:
    return None if kind == "hf" else workloads.default_step(kind)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- jobs: the user's loop, timed from the loader's creation to its workers' end ------------


@dataclass
class Job:
    """One timed job: its wall time, the indices each epoch delivered, and the online pick."""

    seconds: float
    seen: list[list[int]]
    pick: str = ""
    pick_workers: int | None = None  # the pick's num_workers, to look it up in the grid
    stretches: int = 0
    cache_files: int = 0


def drive(loader: Any, epochs: int, step: Callable[[Any], Any] | None) -> list[list[int]]:
    seen = []
    for _ in range(epochs):
        epoch: list[int] = []
        for indices, sample in loader:
            epoch.extend(indices.tolist())
            if step is not None:
                step(sample)
        seen.append(epoch)
    return seen


def fixed_job(dataset: Indexed, step: Any, workers: int, epochs: int) -> Job:
    persistent = workers > 0 and epochs > 1
    gc.collect()  # no collection falls due mid-fork, for every job alike
    start = time.perf_counter()
    loader = DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=workers,
        persistent_workers=persistent,
    )
    seen = drive(loader, epochs, step)
    if persistent and loader._iterator is not None:
        # what deleting the loader's iterator does, done now so the clock includes it
        loader._iterator._shutdown_workers()
    seconds = time.perf_counter() - start
    return Job(seconds, seen)


def online_job(
    dataset: Indexed, step: Any, epochs: int, cache_dir: Path, *, shuffle: bool = True
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


def audit(job: Job, samples: int, epochs: int, *, ordered: bool = False) -> list[str]:
    """What went wrong with exactly-once delivery, one line per bad epoch (empty: all good)."""
    problems = []
    if len(job.seen) != epochs:
        problems.append(f"{len(job.seen)} epochs delivered, {epochs} asked")
    expected = list(range(samples))
    for epoch, seen in enumerate(job.seen):
        if ordered and seen == expected:
            continue
        distinct = set(seen)
        missing = sum(1 for i in expected if i not in distinct)
        extra = len(seen) - (samples - missing)  # repeats and out-of-range indices
        if missing or extra:
            problems.append(f"epoch {epoch}: {len(seen)} indices, {missing} missing, {extra} extra")
        elif ordered:
            problems.append(f"epoch {epoch}: every index once, but not in order 0..N-1")
    return problems


# ---- one (kind, E): interleaved rounds of the grid and both online jobs ---------------------


@dataclass
class Cell:
    kind: str
    epochs: int
    samples: int
    grid: dict[int, list[float]] = field(default_factory=dict)
    online: dict[str, list[Job]] = field(default_factory=lambda: {EMPTY: [], CACHED: []})
    audited_epochs: int = 0
    audit_problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def best_fixed(self) -> int | None:
        done = [n for n, times in self.grid.items() if times]
        return min(done, key=lambda n: statistics.median(self.grid[n])) if done else None

    def best_s(self) -> float:
        """Median job time of the best fixed config (NaN: none succeeded)."""
        best = self.best_fixed()
        return statistics.median(self.grid[best]) if best is not None else float("nan")

    def online_s(self, variant: str) -> float:
        times = [job.seconds for job in self.online[variant]]
        return statistics.median(times) if times else float("nan")


def round_order(items: list[Any], round_: int, rounds: int) -> list[Any]:
    """The items rotated by a share of the list per round; the cached job stays after the
    empty-cache one, whose cache it reads."""
    shift = round_ * len(items) // max(rounds, 1)
    out = items[shift:] + items[:shift]
    i, j = out.index(EMPTY), out.index(CACHED)
    if j < i:
        out[i], out[j] = out[j], out[i]
    return out


def measure(kind: str, dataset: Indexed, epochs: int, plan: Plan, root: Path) -> Cell:
    step, grid = step_of(kind), STORAGE_GRID if kind == "storage" else GRID
    cell = Cell(kind, epochs, len(dataset), {n: [] for n in grid})
    for r in range(plan.rounds):
        cache_dir = root / f"{kind}-E{epochs}-round{r}"
        for item in round_order([*grid, EMPTY, CACHED], r, plan.rounds):
            try:
                if isinstance(item, int):
                    job = fixed_job(dataset, step, item, epochs)
                    cell.grid[item].append(job.seconds)
                else:
                    job = online_job(dataset, step, epochs, cache_dir)
                    cell.online[item].append(job)
            except Exception as error:
                log(traceback.format_exc())
                cell.errors.append(f"{item} round {r}: {type(error).__name__}: {error}")
                continue
            problems = audit(job, len(dataset), epochs)
            cell.audited_epochs += len(job.seen) if isinstance(item, str) else 0
            cell.audit_problems += [f"{item} round {r}: {p}" for p in problems]
            extra = (
                f" pick {job.pick} (stretches {job.stretches}, cache files {job.cache_files})"
                if isinstance(item, str)
                else ""
            )
            flag = f" AUDIT FAILED: {problems}" if problems else ""
            log(f"  {kind} E={epochs} r{r} {item!s:>14}: {job.seconds:7.3f} s{extra}{flag}")
    return cell


def unshuffled_audit(kind: str, dataset: Indexed, root: Path) -> str:
    """One online job with shuffle=False: every epoch must deliver 0..N-1 in order."""
    try:
        job = online_job(
            dataset, step_of(kind), AUDIT_EPOCHS, root / f"{kind}-ordered", shuffle=False
        )
    except Exception as error:
        log(traceback.format_exc())
        return f"**error** {type(error).__name__}: {error}"
    problems = audit(job, len(dataset), AUDIT_EPOCHS, ordered=True)
    log(f"  {kind} unshuffled audit: {job.seconds:.3f} s, {problems or 'ok'}")
    return "; ".join(f"**{p}**" for p in problems) if problems else "ok"


# ---- rendering: reads the cells, measures nothing ------------------------------------------


def seconds_range(values: list[float]) -> str:
    if not values:
        return "failed"
    text = f"{statistics.median(values):.3f}"
    return text + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def ratio(cell: Cell, variant: str) -> float | None:
    value = cell.online_s(variant) / cell.best_s()
    return None if math.isnan(value) else value  # NaN: a side with no successful job


def picks(cell: Cell, variant: str) -> str:
    """Each distinct pick, how many stretches it took, and its grid config's median job."""

    def one(job: Job) -> str:
        fixed = cell.grid.get(job.pick_workers) if job.pick_workers is not None else None
        grid = f", grid w={job.pick_workers} {statistics.median(fixed):.3f} s" if fixed else ""
        noun = "stretch" if job.stretches == 1 else "stretches"
        return f"{job.pick or 'no pick'} ({job.stretches} {noun}{grid})"

    counts = Counter(one(job) for job in cell.online[variant])
    return ", ".join(p + (f" x{n}" if n > 1 else "") for p, n in counts.items()) or "-"


def main_row(cell: Cell) -> str:
    best = cell.best_fixed()
    fixed = f"w={best} {seconds_range(cell.grid[best])}" if best is not None else "failed"
    parts = [f"{cell.kind}", f"{cell.epochs}", f"{cell.samples}", fixed]
    for variant, bar in (
        (EMPTY, EMPTY_BAR if cell.epochs >= 3 else math.inf),
        (CACHED, CACHED_BAR),
    ):
        value = ratio(cell, variant)
        mark = "" if value is None or value <= bar else " **over**"
        parts.append(seconds_range([job.seconds for job in cell.online[variant]]))
        parts.append(f"{value:.2f}{mark}" if value is not None else "-")
    parts.append(f"{picks(cell, EMPTY)}; cached: {picks(cell, CACHED)}")
    bad = len(cell.audit_problems)
    parts.append(f"**{bad} bad**" if bad else f"ok ({cell.audited_epochs} epochs)")
    return "| " + " | ".join(parts) + " |"


def grid_row(cell: Cell, columns: tuple[int, ...]) -> str:
    best = cell.best_fixed()
    cells = []
    for n in columns:
        times = cell.grid.get(n)
        text = f"{statistics.median(times):.3f}" if times else "-"
        cells.append(f"**{text}**" if n == best else text)
    return f"| {cell.kind} | {cell.epochs} | " + " | ".join(cells) + " |"


def count(cells: list[Cell], good: Callable[[Cell], bool]) -> str:
    return f"{sum(1 for c in cells if good(c))} of {len(cells)}"


def summary(cells: list[Cell], ordered: dict[str, str]) -> str:
    scale, slack_s = TINY_BAR

    def under(variant: str, bar: float) -> Callable[[Cell], bool]:
        return lambda c: (ratio(c, variant) or float("inf")) <= bar

    def tiny_bar(variant: str) -> Callable[[Cell], bool]:
        return lambda c: c.online_s(variant) <= scale * c.best_s() + slack_s

    tiny = [c for c in cells if c.kind == "tiny"]
    long_jobs = [c for c in cells if c.epochs >= 3]
    audited = sum(c.audited_epochs for c in cells)
    bad = sum(len(c.audit_problems) for c in cells)
    errors = sum(len(c.errors) for c in cells)
    ordered_text = ", ".join(f"{k} {v}" for k, v in ordered.items())
    return (
        f"**Empty cache, E >= 3: {count(long_jobs, under(EMPTY, EMPTY_BAR))}"
        f" rows within {EMPTY_BAR:.2f}x; cached: {count(cells, under(CACHED, CACHED_BAR))} rows "
        f"within {CACHED_BAR:.2f}x; in memory (tiny) against {scale}x + {slack_s} s: empty cache "
        f"{count(tiny, tiny_bar(EMPTY))}, cached {count(tiny, tiny_bar(CACHED))}.** "
        f"Audit: {bad} bad epochs ({audited} online epochs delivered; torch's fixed-config "
        f"epochs checked alike); unshuffled (E={AUDIT_EPOCHS}, order 0..N-1): {ordered_text}. "
        f"Jobs that raised: {errors}."
    )


def details(cells: list[Cell]) -> str:
    lines = [f"- {c.kind} E={c.epochs}: {e}" for c in cells for e in c.errors]
    lines += [f"- {c.kind} E={c.epochs}: audit {p}" for c in cells for p in c.audit_problems]
    return ("Problems:\n\n" + "\n".join(lines) + "\n") if lines else ""


def render(cells: list[Cell], ordered: dict[str, str], plan: Plan, meta: dict[str, Any]) -> str:
    columns = STORAGE_GRID
    head = (
        "| kind | E | samples | best fixed, job s (range) | online, empty cache | / best "
        "| online, cached | / best | online pick (stretches measured) | audit |\n"
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |"
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
Fixed configs: torch's `DataLoader(ds, batch_size=64, shuffle=True, num_workers=n,
persistent_workers=n > 0 and E > 1)` for n in {list(GRID)} (storage also 32); the best median
is the baseline (the lowest of several noisy medians, which flatters it a little). Online:
`loadertune.DataLoader(ds, batch_size=64, shuffle=True, epochs=E, cache=True)`, first with an
empty `{CACHE_ENV}`, then with the cache that job wrote. {plan.rounds} interleaved rounds,
order rotated; medians with (min-max). Every sample is returned as `(index, sample)`; each
online epoch's indices must be exactly `range(N)`. hf: `datasets.Dataset.from_dict` of numpy
({HF_FEATURES} float32 features, label), `.with_format("torch")`, read through its
`__getitems__`.

{head}
{chr(10).join(main_row(c) for c in cells)}

{summary(cells, ordered)}

Every fixed config, median job s (the best in bold):

{grid_head}
{chr(10).join(grid_row(c, columns) for c in cells)}

{details(cells)}"""


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
    cells: list[Cell] = []
    ordered: dict[str, str] = {}
    saved = os.environ.get(CACHE_ENV)
    try:
        with tempfile.TemporaryDirectory(prefix="loadertune-online-") as folder:
            for kind, samples in plan.samples.items():
                log(f"{kind}: {samples} samples")
                dataset = make_dataset(kind, samples)
                drive(DataLoader(dataset, batch_size=BATCH_SIZE), 1, None)  # warm caches
                for epochs in plan.epochs:
                    cells.append(measure(kind, dataset, epochs, plan, Path(folder)))
                ordered[kind] = unshuffled_audit(kind, dataset, Path(folder))
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
    return finish(SECTION, render(cells, ordered, plan, meta), args.quick or bool(args.kinds))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
