"""Does recording the timeline change what it measures?

Every trial stamps each batch in the worker (a wrapped collate), records when the sampler handed
out each batch's indices, and takes four clock readings and a few list appends per batch in the
main loop. This script measures what that costs, two ways:

1. Per batch, each instrument alone: the collate wrapper around an identity collate, and the
   sampler recorder around a BatchSampler, against the bare call (median of interleaved rounds).
2. Whole epochs, end to end: the classic recipe's loop (``for batch in DataLoader(...):
   step(batch)``) against ``run_trial`` on the same data, step and settings, in interleaved
   rounds; the ratio of the medians and the extra time per batch, set against the step's own
   time (the step alone on a cached batch).

    python benchmarks/instrumentation.py           # full run, rewrites its RESULTS.md section
    python benchmarks/instrumentation.py --quick   # a smoke run, prints only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

import workloads
from loadertune import LoaderConfig, TrialLimits, Workload
from loadertune.engine.offline import run_trial
from loadertune.engine.probe import IndexRecorder, ProbedCollate
from results_file import finish, provenance

SECTION = "## Instrumentation cost"
TARGET_SHARE = 0.02  # the bar: recording costs under 2% of step time


class MatmulStep(workloads.ClassicStep):
    """The classic step plus a few 256x256 matrix products (a few ms): a small real model."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.randn(256, 256)

    def __call__(self, batch: Any) -> None:
        super().__call__(batch)
        x = self.weight
        for _ in range(4):
            x = torch.tanh(x @ self.weight)


@dataclass(frozen=True)
class Case:
    name: str
    step: Callable[[], Callable[[Any], Any]] | None
    workers: int
    batch_size: int = 64


CASES = (
    Case("no step, batch 1 (the harness alone)", None, 0, batch_size=1),
    Case("classic step, w=0", workloads.ClassicStep, 0),
    Case("classic step, w=2", workloads.ClassicStep, 2),
    Case("matmul step, w=0", MatmulStep, 0),
)


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - begin) / calls * 1e6


def instrument_costs(rounds: int) -> dict[str, tuple[float, float]]:
    """Median per-batch cost (µs) of each instrument and of the bare call it wraps."""
    identity = ProbedCollate(lambda samples: samples)
    samples = [torch.zeros(100) for _ in range(64)]
    sampler = BatchSampler(SequentialSampler(range(64_000)), 64, drop_last=False)
    recorder = IndexRecorder(sampler)
    pairs: dict[str, tuple[list[float], list[float]]] = {"collate": ([], []), "sampler": ([], [])}
    for _ in range(rounds):
        pairs["collate"][0].append(per_call_us(lambda: samples, 20_000))
        pairs["collate"][1].append(per_call_us(lambda: identity(samples), 20_000))
        pairs["sampler"][0].append(_per_batch_iter_us(sampler))
        pairs["sampler"][1].append(_per_batch_iter_us(recorder))
    return {k: (statistics.median(a), statistics.median(b)) for k, (a, b) in pairs.items()}


def _per_batch_iter_us(batches: Any) -> float:
    begin = time.perf_counter()
    count = sum(1 for _ in batches)
    return (time.perf_counter() - begin) / count * 1e6


@dataclass
class EpochRow:
    case: Case
    batches: int
    plain_s: list[float]
    probed_s: list[float]
    step_us: float | None

    @property
    def ratio(self) -> float:
        return statistics.median(self.probed_s) / statistics.median(self.plain_s)

    @property
    def extra_us(self) -> float:
        """From the medians."""
        diff = statistics.median(self.probed_s) - statistics.median(self.plain_s)
        return diff / self.batches * 1e6

    @property
    def extra_fastest_us(self) -> float:
        """From the fastest run of each side: what noise added to one side falls out."""
        return (min(self.probed_s) - min(self.plain_s)) / self.batches * 1e6


def epoch_row(case: Case, rows: int, rounds: int) -> EpochRow:
    generator = torch.Generator().manual_seed(0)
    dataset = TensorDataset(
        torch.randn(rows, 100, generator=generator), torch.randint(0, 2, (rows,))
    )
    step = case.step() if case.step is not None else None
    workload = Workload(dataset, step=step, batch_size=case.batch_size, shuffle=False)
    config = LoaderConfig(case.workers)
    limits = TrialLimits(budget_s=1e6, timeout_s=120)
    plain: list[float] = []
    probed: list[float] = []
    for round_ in range(rounds):  # alternate which goes first, so neither always runs cold
        sides = [
            lambda: plain.append(_plain_epoch_s(dataset, step, case)),
            lambda: probed.append(_probed_epoch_s(workload, config, limits, case.name)),
        ]
        for side in sides if round_ % 2 == 0 else sides[::-1]:
            side()
    cached = next(iter(DataLoader(dataset, batch_size=case.batch_size)))
    step_us = (
        statistics.median(per_call_us(lambda: step(cached), 200) for _ in range(5))
        if step is not None
        else None
    )
    return EpochRow(case, len(workload.loader(config)), plain, probed, step_us)


def _probed_epoch_s(
    workload: Workload, config: LoaderConfig, limits: TrialLimits, name: str
) -> float:
    trial = run_trial(workload, config, limits)
    if not trial.complete or trial.end_s is None:
        raise RuntimeError(f"{name}: the trial did not run a whole epoch: {trial.error}")
    return trial.end_s


def _plain_epoch_s(dataset: Any, step: Callable[[Any], Any] | None, case: Case) -> float:
    """The classic recipe, timed the way run_trial times an epoch: from iter() to the end."""
    loader = DataLoader(dataset, batch_size=case.batch_size, num_workers=case.workers)
    begin = time.perf_counter()
    for batch in loader:
        if step is not None:
            step(batch)
    return time.perf_counter() - begin


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"±{(max(values) - min(values)) / median * 50:.0f}%"


def render(costs: dict[str, tuple[float, float]], rows: list[EpochRow], argv: list[str]) -> str:
    lines = [
        SECTION,
        "",
        provenance("instrumentation.py", argv),
        "",
        "Each instrument alone (median over interleaved rounds, µs per batch):",
        "",
        "| instrument | bare | instrumented | cost per batch |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = {"collate": "collate wrapper (worker stamp)", "sampler": "sampler recorder"}
    for key, (bare, wrapped) in costs.items():
        lines.append(f"| {names[key]} | {bare:.2f} | {wrapped:.2f} | {wrapped - bare:.2f} |")
    lines += [
        "",
        "Whole epochs, the classic recipe's loop against `run_trial` (interleaved rounds, "
        "alternating which goes first; median ± half the range; extra per batch from the "
        "medians, and from the fastest run of each side):",
        "",
        "| case | batches | plain loop | run_trial | ratio | extra per batch (medians) "
        "| (fastest) | step alone | extra / step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [_epoch_line(row) for row in rows]
    return "\n".join(lines) + "\n"


def _epoch_line(row: EpochRow) -> str:
    step = f"{row.step_us:.0f} µs" if row.step_us else "-"
    share = f"{row.extra_fastest_us / row.step_us * 100:.1f}%" if row.step_us else "-"
    return (
        f"| {row.case.name} | {row.batches} "
        f"| {statistics.median(row.plain_s) * 1e3:.1f} ms {spread(row.plain_s)} "
        f"| {statistics.median(row.probed_s) * 1e3:.1f} ms {spread(row.probed_s)} "
        f"| {row.ratio:.3f} | {row.extra_us:.1f} µs | {row.extra_fastest_us:.1f} µs "
        f"| {step} | {share} |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run; prints only")
    args = parser.parse_args(argv)
    rounds, rows = (3, 4_000) if args.quick else (11, 20_000)
    costs = instrument_costs(rounds)
    epochs = [epoch_row(case, rows, rounds) for case in CASES]
    return finish(SECTION, render(costs, epochs, argv), args.quick)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
