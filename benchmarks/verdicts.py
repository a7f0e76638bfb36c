"""What does the verdict say on workloads whose bottleneck is known by construction?

- storage latency (4 ms of sleep per sample, no step): at 0 workers the step can only wait, so
  the verdict must be ``input``; at 16 workers the sleeps overlap;
- a training step heavier than loading (a few 384x384 matrix products per batch on tiny rows):
  at 16 workers the step should never wait: ``compute``;
- the classic example (the demo): the verdict must say why 0 workers wins.

Each runs through ``loadertune.bench`` (diagnosis included), and the table shows each config's
figures and verdict, then the pick's sentence and the advice, as a user would read them.

    python benchmarks/verdicts.py           # full run, rewrites its RESULTS.md section
    python benchmarks/verdicts.py --quick   # smaller data, prints only
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import workloads
from loadertune import LoaderConfig, Result, TrialLimits, Workload, bench
from loadertune.analysis.verdict import summary_bottleneck
from loadertune.cli.classic import classic_workload, demo_configs
from loadertune.engine.machine import machine_facts
from loadertune.records import units
from results_file import finish, provenance

SECTION = "## Verdicts on known bottlenecks"


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    workload: Callable[[int], Workload]
    workers: tuple[int, ...]


def storage(scale: int) -> Workload:
    return Workload(workloads.make("storage", 1600 // scale), batch_size=32, name="storage 4 ms")


def heavy(scale: int) -> Workload:
    """About 100 ms of matrix products per batch: far more than a batch costs to load, or to
    pass from one of 16 workers on 2 cores (~2.5 ms here, so a 50 ms step waits ~5% there
    and sits on the compute/input boundary)."""
    data = workloads.make("tiny", 1600 // scale)
    step = workloads.HeavyStep(size=512, repeats=32)
    return Workload(data, step=step, batch_size=32, name="heavy step (100 ms)")


CASES = (
    Case("storage latency", "w=0: input", storage, (0, 16)),
    Case("heavy step", "w=16: compute", heavy, (0, 16)),
)


def run(workload: Workload, configs: list[LoaderConfig], repeats: int) -> Result:
    return bench(workload, configs, repeats=repeats, limits=TrialLimits(budget_s=5.0))


def rows(result: Result) -> list[str]:
    out = []
    for summary in result.summaries():
        verdict = summary_bottleneck(summary)
        epoch = summary.epoch_s
        out.append(
            f"| {result.workload['name']} | {summary.config.label()} "
            f"| {units.seconds_spread(epoch)} "
            f"| {units.percent(verdict.wait_fraction if verdict else None)} "
            f"| {units.percent(verdict.startup_share if verdict else None)} "
            f"| {units.percent(verdict.transit_share if verdict else None)} "
            f"| **{verdict.label if verdict else '-'}** |"
        )
    return out


def story(result: Result) -> list[str]:
    verdict = result.verdict or {}
    lines = [f"- **{result.workload['name']}**: {verdict.get('sentence', 'no verdict')}"]
    lines += [f"  - advice `{f['code']}`: {f['finding']} Fix: {f['fix']}" for f in result.advice]
    return lines


def render(results: list[tuple[str, Result]], argv: list[str]) -> str:
    lines = [
        SECTION,
        "",
        provenance("verdicts.py", argv) + " Each config 3 interleaved runs through "
        "`loadertune.bench`; figures are medians.",
        "",
        "| workload | config | epoch | wait | startup share | in transit | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, result in results:
        lines += rows(result)
    lines += ["", "Expected: " + "; ".join(f"{name}: {exp}" for name, exp in _expected()), ""]
    for _, result in results:
        lines += story(result)
    return "\n".join(lines) + "\n"


def _expected() -> list[tuple[str, str]]:
    return [(c.name, c.expected) for c in CASES] + [("classic", "explains why w=0 wins")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data; prints only")
    args = parser.parse_args(argv)
    scale = 4 if args.quick else 1
    results: list[tuple[str, Any]] = []
    for case in CASES:
        configs = [LoaderConfig(n) for n in case.workers]
        results.append((case.name, run(case.workload(scale), configs, 3)))
        print(f"{case.name}: done", file=sys.stderr, flush=True)
    classic = run(classic_workload(), demo_configs(machine_facts().cpus.usable), 3)
    results.append(("classic", classic))
    return finish(SECTION, render(results, argv), args.quick)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
