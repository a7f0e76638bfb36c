"""Does `loadertune tune --budget 25` end within its budget on data whose grid takes minutes?

Runs the command line itself (a fresh process each time, as a user would) on three datasets
large enough that one epoch without workers takes a minute or so, and reports tune's own
elapsed time (from the command's start), the whole process's wall time (interpreter and torch
import included), and a lower bound on what the exhaustive grid would take: the epoch without
workers (as tune estimated it) plus ten epochs of the fastest config tune found (the grid has
ten more counts, none faster than that).

    python benchmarks/budget.py            # full run, rewrites its RESULTS.md section
    python benchmarks/budget.py --quick    # budget 10, prints only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import workloads
from results_file import finish, provenance

SECTION = "## Tune within its budget"
HERE = Path(__file__).resolve().parent
GRID_OTHER_CONFIGS = 10  # worker_grid(32) has 11 counts; one is w=0
SAMPLES = 20_000


def big_storage() -> Any:
    """4 ms of waiting per sample: one epoch without workers takes about 80 s."""
    return workloads.make("storage", SAMPLES)


def big_jpeg() -> Any:
    """Pillow JPEG decode and crop."""
    return workloads.make("jpeg", SAMPLES)


def big_pycpu() -> Any:
    """About 1 ms of pure-Python work per sample."""
    return workloads.make("pycpu", SAMPLES)


CASES = (
    ("storage latency", "big_storage"),
    ("JPEG decode", "big_jpeg"),
    ("pure-Python CPU", "big_pycpu"),
)


def run_case(name: str, budget_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "loadertune", "tune", f"{HERE / 'budget.py'}:{name}"]
        command += ["--batch-size", "32", "--budget", str(budget_s), "--json", str(out)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall_s = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
        doc = json.loads(out.read_text())
    return {"wall_s": wall_s, "doc": doc}


def row(label: str, budget_s: float, run: dict[str, Any]) -> str:
    doc = run["doc"]
    tuning = doc["tuning"]
    configs = doc["summary"]
    no_workers = next(c for c in configs if c["label"] == "w=0")["epoch_s"]["median"]
    fastest = min(c["epoch_s"]["median"] for c in configs if c.get("epoch_s"))
    grid_floor = no_workers + GRID_OTHER_CONFIGS * fastest
    cut = "yes" if tuning["stopped_by_budget"] else "no"
    return (
        f"| {label} | {budget_s:.0f} s | {tuning['elapsed_s']:.1f} s | "
        f"**{tuning['elapsed_s'] / budget_s:.2f}** | {run['wall_s']:.1f} s | "
        f"{len(doc['trials'])} | {cut} | {doc['best']['label']} | "
        f"{no_workers:.0f} s | >= {grid_floor:.0f} s |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="budget 10 s; prints only")
    args = parser.parse_args(argv)
    budget_s = 10.0 if args.quick else 25.0
    rows = []
    for label, name in CASES:
        rows.append(row(label, budget_s, run_case(name, budget_s)))
        print(f"{label}: done", file=sys.stderr, flush=True)
    text = (
        f"{SECTION}\n\n{provenance('budget.py', argv)}\n\n"
        f"`loadertune tune benchmarks/budget.py:<name> --batch-size 32 --budget {budget_s:.0f}`"
        f" on {SAMPLES} samples. *tune's elapsed* counts from the command's start (the budget's "
        "clock); *process wall* adds the interpreter and torch import. The grid's floor is the "
        "epoch without workers (tune's estimate) plus ten epochs of the fastest config found.\n\n"
        "| data | budget | tune's elapsed | of budget | process wall | trials | budget-cut | "
        "pick | epoch at w=0 | exhaustive grid |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    return finish(SECTION, text, args.quick)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
