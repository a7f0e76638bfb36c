"""Does ``loadertune.bench``'s epoch time agree with a whole epoch timed by hand?

For each workload kind (see ``workloads.py``) and each of 0, 2, 8 and 32 workers, this times
whole epochs the classic way::

    t = perf_counter(); for b in DataLoader(ds, batch_size=64, shuffle=True, num_workers=n): pass
    epoch = perf_counter() - t

and runs ``loadertune.bench`` on the same dataset and config with a short trial budget, so some
trials are cut short and the rest of their epoch is estimated. Hand epochs and bench trials are
interleaved (one of each per config per round, configs rotated, which goes first alternating) so
drift on a shared machine hits both alike. Only ratios within one run are reported.

    PYTHONPATH=src python benchmarks/epoch_accuracy.py          # full run, ~6 min on 2 cores
    PYTHONPATH=src python benchmarks/epoch_accuracy.py --quick  # smoke run, under a minute

The full run rewrites the "## Epoch estimate vs hand-timed epoch" section of
``benchmarks/RESULTS.md`` (other sections are kept); ``--quick`` only prints, unless
``--results`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

import workloads
from loadertune import LoaderConfig, Result, Trial, TrialLimits, Workload, bench
from results_file import RESULTS_PATH, write_section

WORKERS = (0, 2, 8, 32)
BATCH_SIZE = 64
TOLERANCE = 0.10  # a row "agrees" when bench's median is within 10% of the hand median
SECTION = "## Epoch estimate vs hand-timed epoch"


@dataclass(frozen=True)
class Plan:
    """Dataset sizes (samples), rounds and the trial budget of one run."""

    samples: dict[str, int]
    rounds: int
    budget_s: float
    jpeg_images: int = workloads.JPEG_IMAGES


# Sized on the 2-core VM so the slowest worker count takes ~1-6 s per hand epoch, and so a
# 1 s budget cuts short 0 workers everywhere, 2/8/32 workers of "tiny" and 32 of "pycpu".
FULL = Plan({"tiny": 80_000, "pycpu": 8_000, "storage": 1_280, "jpeg": 768}, 4, 1.0)
QUICK = Plan({"tiny": 12_000, "pycpu": 640, "storage": 192, "jpeg": 128}, 1, 0.3, 8)


@dataclass
class Row:
    """Everything measured for one (kind, config)."""

    kind: str
    config: LoaderConfig
    samples: int
    hand_s: list[float] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # 1-min load average after each pair


def engine_fingerprint() -> str:
    """sha256 (12 hex digits) of the loadertune sources: which engine a run measured."""
    src = Path(__file__).resolve().parent.parent / "src" / "loadertune"
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def hand_epoch_s(dataset: Any, workers: int) -> float:
    """One whole epoch of the classic recipe, a fresh DataLoader, timed from before its creation."""
    start = time.perf_counter()
    for _batch in DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers):
        pass
    return time.perf_counter() - start


def bench_trial(workload: Workload, config: LoaderConfig, limits: TrialLimits) -> Result:
    """One bench trial of one config (bench called per trial so hand epochs can sit between)."""
    return bench(workload, [config], repeats=1, limits=limits)


def rotated(items: list[Row], shift: int) -> list[Row]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def measure_kind(kind: str, plan: Plan, limits: TrialLimits) -> tuple[list[Row], Result]:
    """All rounds of one kind: per config and round one hand epoch and one bench trial."""
    options = {"images": plan.jpeg_images} if kind == "jpeg" else {}
    dataset = workloads.make(kind, plan.samples[kind], **options)
    workload = Workload(
        dataset, step=workloads.default_step(kind), batch_size=BATCH_SIZE, shuffle=True, name=kind
    )
    rows = [Row(kind, LoaderConfig(num_workers=n), plan.samples[kind]) for n in WORKERS]
    first: Result | None = None
    for r in range(plan.rounds):
        for i, row in enumerate(rotated(rows, r)):
            hand_first = (r + i) % 2 == 0
            if hand_first:
                row.hand_s.append(hand_epoch_s(dataset, row.config.num_workers))
            result = bench_trial(workload, row.config, limits)
            first = first or result
            row.trials.extend(result.trials)
            if not hand_first:
                row.hand_s.append(hand_epoch_s(dataset, row.config.num_workers))
            row.loads.append(os.getloadavg()[0])
            log_pair(kind, r, row)
    if first is None:
        raise ValueError("no rounds to run")
    trials = [t for row in rows for t in row.trials]
    merged = Result(first.machine, first.workload, first.settings, trials)
    return rows, merged


def log_pair(kind: str, round_: int, row: Row) -> None:
    trial = row.trials[-1]
    how = "whole" if trial.epoch_measured else f"est {trial.batches}/{trial.epoch_batches}"
    bench_s = f"{trial.epoch_s:.3f} s" if trial.epoch_s is not None else "no figure"
    log(
        f"  {kind:8s} w={row.config.num_workers:<2d} round {round_}: hand {row.hand_s[-1]:.3f} s, "
        f"bench {bench_s} ({how}); load {row.loads[-1]:.2f}"
    )
    if not trial.epoch_measured:
        log("    " + trial_details(trial))


def trial_details(trial: Trial) -> str:
    """What an estimate was built from, for investigating a row that disagrees."""
    rate = trial.rate
    rate_text = (
        f"rate {rate.batches_per_s:.2f} b/s ({rate.method}, batches {rate.first_batch}.., "
        f"window {rate.start_s:.3f}-{rate.end_s:.3f} s)"
        if rate
        else "rate none"
    )
    elapsed = trial.step_end_s[-1] if trial.step_end_s else float("nan")
    startup = trial.startup_s if trial.startup_s is not None else float("nan")
    return (
        f"{rate_text}; measured {trial.batches}/{trial.epoch_batches} batches in {elapsed:.3f} s; "
        f"startup {startup:.3f} s; shutdown {trial.shutdown_s:.3f} s; error {trial.error}"
    )


@dataclass(frozen=True)
class Line:
    """One table row's figures, derived from a Row and the bench Summary of its config."""

    row: Row
    hand: Any  # stats.Spread
    bench: Any  # stats.Spread or None

    @property
    def ratio(self) -> float | None:
        return self.bench.median / self.hand.median if self.bench else None

    @property
    def agrees(self) -> bool:
        return self.ratio is not None and abs(self.ratio - 1) <= TOLERANCE

    @property
    def paired_estimate_ratios(self) -> list[float]:
        """Each estimated trial over the hand epoch of its own round (drift mostly cancels)."""
        return [
            t.epoch_s / h
            for t, h in zip(self.row.trials, self.row.hand_s, strict=True)
            if t.ok and not t.epoch_measured and t.epoch_s is not None
        ]

    @property
    def trial_kinds(self) -> str:
        ok = [t for t in self.row.trials if t.ok]
        est = [t for t in ok if not t.epoch_measured]
        failed = len(self.row.trials) - len(ok)
        parts = []
        if len(ok) - len(est):
            parts.append(f"{len(ok) - len(est)} whole")
        if est:
            share = statistics.median(t.batches / (t.epoch_batches or 1) for t in est)
            methods = "/".join(sorted({t.rate.method if t.rate else "no rate" for t in est}))
            parts.append(f"{len(est)} est ({share:.0%} seen, {methods})")
        if failed:
            parts.append(f"{failed} failed")
        return ", ".join(parts)


def lines_of(rows: list[Row], merged: Result) -> list[Line]:
    from loadertune.records.stats import spread

    summaries = {s.config: s for s in merged.summaries()}
    return [Line(row, spread(row.hand_s), summaries[row.config].epoch_s) for row in rows]


def fmt_spread(value: Any) -> tuple[str, str]:
    if value is None:
        return "-", "-"
    return f"{value.median:.3f}", f"{value.low:.3f}-{value.high:.3f} ({value.rel:.0%})"


def table(lines: list[Line]) -> str:
    head = (
        "| kind | workers | samples (batches) | hand epoch s, median | hand range (spread) "
        "| bench epoch_s, median | bench range (spread) | bench/hand | bench trials "
        "| est/hand, paired by round |"
    )
    out = [head, "|" + " --- |" * 10]
    for line in lines:
        row = line.row
        batches = -(-row.samples // BATCH_SIZE)
        hand_m, hand_r = fmt_spread(line.hand)
        bench_m, bench_r = fmt_spread(line.bench)
        ratio = f"{line.ratio:.3f}" if line.ratio is not None else "-"
        flag = "" if line.agrees else " **off**"
        out.append(
            f"| {row.kind} | {row.config.num_workers} | {row.samples} ({batches}) | {hand_m} "
            f"| {hand_r} | {bench_m} | {bench_r} | {ratio}{flag} | {line.trial_kinds} "
            f"| {_ratios(line.paired_estimate_ratios)} |"
        )
    return "\n".join(out)


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) or "-"


def summary_text(lines: list[Line]) -> str:
    ratios = [line.ratio for line in lines if line.ratio is not None]
    agree = sum(line.agrees for line in lines)
    est = [line for line in lines if any(not t.epoch_measured for t in line.row.trials if t.ok)]
    est_agree = sum(line.agrees for line in est)
    med = statistics.median(ratios) if ratios else float("nan")
    low, high = (min(ratios), max(ratios)) if ratios else (float("nan"),) * 2
    hand_rel = statistics.median(line.hand.rel for line in lines)
    paired = [r for line in lines for r in line.paired_estimate_ratios]
    paired_ok = sum(abs(r - 1) <= TOLERANCE for r in paired)
    paired_med = statistics.median(paired) if paired else float("nan")
    return (
        f"Median bench/hand ratio {med:.3f} (range {low:.3f}-{high:.3f}) over {len(ratios)} rows; "
        f"median spread of the hand epochs {hand_rel:.0%} (range / median).\n\n"
        f"**{agree} of {len(lines)} rows within {TOLERANCE:.0%}** "
        f"({est_agree} of {len(est)} rows with estimated trials). Estimated trials one by one, "
        f"over the hand epoch of the same round: median {paired_med:.3f}, "
        f"{paired_ok} of {len(paired)} within {TOLERANCE:.0%}."
    )


def trial_evidence(trial: Trial, hand_median_s: float) -> str:
    """One bench trial in a few words; for an estimate, the rate it assumed for the rest of the
    epoch beside the rate the hand-timed epoch implies for that same rest."""
    if not trial.ok:
        return f"failed ({trial.error})"
    if trial.epoch_measured:
        return f"whole {trial.epoch_s:.3f} s"
    elapsed = trial.step_end_s[-1] if trial.step_end_s else 0.0
    head = (
        f"est {_seconds(trial.epoch_s)} from {trial.batches}/{trial.epoch_batches} batches in "
        f"{elapsed:.2f} s (startup {_seconds(trial.startup_s)}, shutdown {trial.shutdown_s:.3f} s)"
    )
    rate = trial.rate
    if rate is None:
        return head + ", no rate"
    remaining = (trial.epoch_batches or 0) - trial.batches
    hand_rest_s = hand_median_s - elapsed - trial.shutdown_s
    implied = f"{remaining / hand_rest_s:.1f}" if hand_rest_s > 0 else "n/a"
    return (
        f"{head}, {rate.method} rate {rate.batches_per_s:.1f} b/s over batches "
        f"{rate.first_batch}-{trial.batches - 1}; hand implies {implied} b/s for the other "
        f"{remaining}"
    )


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f} s"


def evidence_text(lines: list[Line]) -> str:
    """For each row off by more than the tolerance: every hand epoch and every bench trial."""
    off = [line for line in lines if not line.agrees]
    if not off:
        return ""
    out = [f"Rows off by more than {TOLERANCE:.0%}, trial by trial (b/s = batches per second):", ""]
    for line in off:
        row = line.row
        hands = ", ".join(f"{h:.3f}" for h in row.hand_s)
        trials = "; ".join(trial_evidence(t, line.hand.median) for t in row.trials)
        out.append(f"- {row.kind}, {row.config.num_workers} workers: hand [{hands}] s; {trials}")
    return "\n".join(out) + "\n"


def machine_text(
    machine: dict[str, Any], load: tuple[list[float], list[float], list[float]]
) -> str:
    cpus = machine["cpus"]
    gib = machine["total_memory_bytes"] / 2**30
    return (
        f"- CPUs: {cpus['usable']} usable, counted by {cpus['how']}; "
        f"os.cpu_count() {cpus['logical']}\n"
        f"- memory: {gib:.1f} GiB total; /dev/shm {_gib(machine.get('shm_bytes'))}\n"
        f"- Python {machine['python_version']}, torch {machine['torch_version']}, "
        f"{machine['platform']}\n"
        f"- load average (1/5/15 min) at start {_load(load[0])}, at end {_load(load[1])}; "
        f"1-min load after each pair (includes our own workers) median "
        f"{statistics.median(load[2]):.2f}, range {min(load[2]):.2f}-{max(load[2]):.2f}"
    )


def _engine_text(before: str, after: str) -> str:
    if before == after:
        return before
    return f"{before} at start, {after} at end (the sources changed during the run)"


def _gib(value: int | None) -> str:
    return "none" if value is None else f"{value / 2**30:.1f} GiB"


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def section_text(
    lines: list[Line], machine: dict[str, Any], plan: Plan, meta: dict[str, Any]
) -> str:
    sizes = ", ".join(f"{k} {n}" for k, n in plan.samples.items())
    return f"""{SECTION}

Command: `{meta["command"]}`
Date: {meta["date"]}; total runtime {meta["runtime_s"]:.0f} s.
Engine: sha256 of `src/loadertune/**/*.py` {meta["engine"]}.

{machine_text(machine, meta["load"])}

Each row: {plan.rounds} hand-timed whole epochs (`for b in DataLoader(ds, batch_size=64,
shuffle=True, num_workers=n): pass`, a fresh DataLoader each, timed from before its creation to
after the loop) and {plan.rounds} `loadertune.bench` trials of the same config with
`TrialLimits(budget_s={plan.budget_s:g})`, interleaved round by round. bench's `epoch_s` is whole
when the epoch fit the budget, else the elapsed part plus the rest at the stock-corrected rate
("est": share of the epoch's batches actually seen, and the rate method). No training step (the
hand loop only does `pass`). Samples: {sizes}; batch 64; workloads in `benchmarks/workloads.py`.
Ranges are min-max over the repeats; spread is (max - min) / median.

{table(lines)}

{summary_text(lines)}

{evidence_text(lines)}"""


def raw_dump(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "kind": row.kind,
            "workers": row.config.num_workers,
            "samples": row.samples,
            "hand_s": row.hand_s,
            "trials": [t.to_dict() for t in row.trials],
        }
        for row in rows
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run, under a minute")
    parser.add_argument("--kinds", nargs="+", choices=sorted(workloads.KINDS), default=None)
    parser.add_argument("--rounds", type=int, default=None, help="repeats of each side")
    parser.add_argument("--budget", type=float, default=None, help="bench trial budget, s")
    parser.add_argument("--results", type=Path, default=None, help="RESULTS.md to update")
    parser.add_argument("--json", type=Path, default=None, help="also dump raw trials here")
    return parser.parse_args(argv)


def plan_of(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    samples = {k: n for k, n in base.samples.items() if args.kinds is None or k in args.kinds}
    return Plan(samples, args.rounds or base.rounds, args.budget or base.budget_s, base.jpeg_images)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_of(args)
    # Trying more workers than CPUs is the point here; DataLoader's warning about it is noise.
    warnings.filterwarnings("ignore", message=".*worker processes in total", category=UserWarning)
    limits = TrialLimits(budget_s=plan.budget_s, timeout_s=120)
    load_start, began = list(os.getloadavg()), time.perf_counter()
    engine = engine_fingerprint()
    log(f"plan: {plan}; load average {_load(load_start)}")
    rows: list[Row] = []
    lines: list[Line] = []
    results: list[Result] = []
    for kind in plan.samples:
        log(f"{kind}: {plan.samples[kind]} samples")
        kind_rows, merged = measure_kind(kind, plan, limits)
        rows += kind_rows
        lines += lines_of(kind_rows, merged)
        results.append(merged)
    meta = {
        "command": "PYTHONPATH=src python " + shlex.join(sys.argv),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runtime_s": time.perf_counter() - began,
        "engine": _engine_text(engine, engine_fingerprint()),
        "load": (load_start, list(os.getloadavg()), [x for row in rows for x in row.loads]),
    }
    text = section_text(lines, results[0].machine, plan, meta)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(raw_dump(rows), indent=1))
    results_path = args.results or (None if args.quick else RESULTS_PATH)
    if results_path is not None:
        write_section(results_path, SECTION, text)
        log(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
