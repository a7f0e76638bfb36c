"""Under ``torchrun``, does ``loadertune tune``'s pick run the multi-rank job as fast as the best
config of a grid in which every rank really runs together?

For two workload kinds (``pycpu``: pure-Python CPU work, ``storage``: 4 ms of waiting per sample,
from ``workloads.py``) and 1, 2 and 4 local ranks, this times whole DDP-shaped jobs
(``ranks_job.py``: every rank's ``DataLoader(dataset, batch_size=64,
sampler=DistributedSampler(dataset), num_workers=n, persistent_workers=n > 0)``, 2 epochs,
from a barrier to a barrier: the slowest rank's pace) for every ``n`` of a grid, in rounds
(the grid order rotated each round), and compares against it, as ratios to the grid's best:

- the pick of ``torchrun --nproc-per-node L -m loadertune tune`` (every rank measuring at once);
- the pick of ``loadertune tune`` run in one process alone, as a tuner that ignores ranks would;
- Lightning's rule, ``usable CPUs // L - 1`` workers per rank.

    python benchmarks/ranks.py            # full run (~20 min on 2 idle cores), rewrites its section
    python benchmarks/ranks.py --quick    # 1 round, 1 and 2 ranks, smaller; prints only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import workloads
from loadertune.engine.machine import usable_cpus
from results_file import finish, provenance

SECTION = "## Tuning under torchrun: the pick against an all-ranks grid"
HERE = Path(__file__).resolve().parent
JOB = str(HERE / "ranks_job.py")
EPOCHS = 2
BAR = 1.10  # the bar: the pick within 10% of the all-ranks grid's best
TUNE_BUDGET_S = 60.0  # tune's default: a 20 s budget was cut short on storage (0.27 s a batch
# without workers), its pick w=2 of the 32 the grid wanted
JOB_TIMEOUT_S = 300


@dataclass(frozen=True)
class Kind:
    name: str
    samples: int
    grid: tuple[int, ...]


@dataclass
class Row:
    kind: str
    local: int
    times: dict[int, list[float]] = field(default_factory=dict)  # workers per rank -> job s
    picks: dict[str, int] = field(default_factory=dict)  # who picked -> workers per rank

    def median(self, workers: int) -> float | None:
        values = self.times.get(workers)
        return statistics.median(values) if values else None

    def best(self) -> tuple[int, float]:
        medians = {n: self.median(n) for n in self.times}
        n = min((k for k, v in medians.items() if v is not None), key=lambda k: medians[k] or 0)
        return n, medians[n] or 0.0


def kinds(quick: bool) -> list[Kind]:
    scale = 2 if quick else 1
    return [
        Kind("pycpu", 3840 // scale, (0, 1, 2, 4)),
        Kind("storage", 2048 // scale, (0, 2, 4, 8, 16, 32)),
    ]


def env_for(kind: Kind, iterations: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANKS_KIND": kind.name,
        "RANKS_SAMPLES": str(kind.samples),
        "RANKS_ITERATIONS": str(iterations),
        "OMP_NUM_THREADS": "1",
        "LOADERTUNE_CACHE_DIR": tempfile.mkdtemp(prefix="ranks-cache-"),
    }


def torchrun(local: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(local),
    ]


def time_job(kind: Kind, local: int, workers: int, env: dict[str, str]) -> float:
    """The job's seconds, first barrier to last, on ``local`` ranks with ``workers`` each."""
    cmd = [*torchrun(local), JOB, "--workers", str(workers), "--epochs", str(EPOCHS)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=JOB_TIMEOUT_S, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("JOB ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"{kind.name} L={local} w={workers} failed: {done.stderr[-2000:]}")
    return float(line.split()[1])


def tuned_workers(kind: Kind, local: int | None, env: dict[str, str], budget_s: float) -> int:
    """num_workers of ``loadertune tune``'s pick: under torchrun on ``local`` ranks, or (None)
    in one process alone."""
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "tune.json")
        tune = ["tune", f"{JOB}:dataset", "--epochs", str(EPOCHS), "--budget", str(budget_s)]
        tune += ["--json", out]
        head = [sys.executable] if local is None else torchrun(local)
        done = subprocess.run(
            [*head, "-m", "loadertune", *tune],
            capture_output=True,
            text=True,
            env=env,
            timeout=JOB_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"tune {kind.name} L={local} failed: {done.stderr[-2000:]}")
        pick = json.loads(Path(out).read_text())["tuning"]["pick"]
        return int(pick.get("num_workers", 0))


def measure(kind: Kind, local: int, rounds: int, single: int, env: dict[str, str]) -> Row:
    row = Row(kind.name, local)
    cpus = usable_cpus().usable
    row.picks["loadertune tune under torchrun"] = tuned_workers(kind, local, env, TUNE_BUDGET_S)
    row.picks["loadertune tune in one process"] = single
    row.picks["Lightning's cpus // ranks - 1"] = max(cpus // local - 1, 0)
    configs = sorted({*kind.grid, *row.picks.values()})
    for r in range(rounds):
        shift = r % len(configs)
        for n in configs[shift:] + configs[:shift]:
            seconds = time_job(kind, local, n, env)
            row.times.setdefault(n, []).append(seconds)
            print(f"  {kind.name} L={local} r{r} w={n}: {seconds:.3f} s", flush=True)
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| kind | local ranks | grid best (workers per rank, job s) | tuned under torchrun "
        "| / best | tuned in one process | / best | Lightning's rule | / best |",
        "| --- | ---: | --- | --- | ---: | --- | ---: | --- | ---: |",
    ]
    for row in rows:
        n, best = row.best()
        cells = [row.kind, str(row.local), f"w={n} {best:.3f}"]
        for who in row.picks:
            w = row.picks[who]
            median = row.median(w) or 0.0
            cells += [f"w={w} {median:.3f}", f"{median / best:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_table(rows: list[Row]) -> str:
    every = sorted({n for row in rows for n in row.times})
    lines = [
        "| kind | local ranks | " + " | ".join(f"w={n}" for n in every) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in every) + " |",
    ]
    for row in rows:
        cells = []
        for n in every:
            values = row.times.get(n)
            cells.append(_spread(values) if values else "-")
        lines.append(f"| {row.kind} | {row.local} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    median = statistics.median(values)
    if len(values) < 2:
        return f"{median:.3f}"
    return f"{median:.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    locals_ = (1, 2) if args.quick else (1, 2, 4)
    rounds = 1 if args.quick else 2
    began, load = time.perf_counter(), os.getloadavg()[0]
    iterations = workloads.calibrate_iterations()
    rows = []
    for kind in kinds(args.quick):
        env = env_for(kind, iterations)
        single = tuned_workers(kind, None, env, TUNE_BUDGET_S)
        rows += [measure(kind, local, rounds, single, env) for local in locals_]
    within = sum(1 for row in rows if row.local > 1 and _ratio(row) <= BAR)
    ranked = sum(1 for row in rows if row.local > 1)
    text = "\n".join(
        [
            SECTION,
            "",
            provenance("ranks.py", argv)
            + f" Load average (1 min) {load:.2f} at start, {os.getloadavg()[0]:.2f} at end;"
            + f" total runtime {time.perf_counter() - began:.0f} s.",
            "",
            f"Each job: `torchrun --standalone --nproc-per-node L benchmarks/ranks_job.py "
            f"--workers n`, every rank's loader over a `DistributedSampler` (batch 64, "
            f"{EPOCHS} epochs, persistent workers where n > 0), timed from a barrier before the "
            "first epoch to a barrier after the last (the slowest rank's pace; process start "
            "and imports left out). pycpu's per-sample work is calibrated once, so every rank "
            f"does the same. {rounds} rounds, the order rotated; medians (min-max). The picks "
            f"are `loadertune tune` with `--budget {TUNE_BUDGET_S:.0f} --epochs {EPOCHS}` on the "
            "same target, under torchrun with L ranks and in one process alone; Lightning's "
            "rule is usable CPUs // L - 1. Each pick's num_workers is timed in the same rounds "
            "as the grid.",
            "",
            table(rows),
            "",
            f"**Under 2+ local ranks: {within} of {ranked} picks within {BAR:.2f}x of the "
            "all-ranks grid's best.**",
            "",
            "Every config, median job s:",
            "",
            grid_table(rows),
            "",
        ]
    )
    return finish(SECTION, text, args.quick)


def _ratio(row: Row) -> float:
    _, best = row.best()
    picked = row.median(row.picks["loadertune tune under torchrun"])
    return (picked or float("inf")) / best if best else float("inf")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
