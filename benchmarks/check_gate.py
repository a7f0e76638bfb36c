"""Is ``loadertune check`` a gate you can leave on? Against a baseline of the same config it
should pass (no flaky gate), and against a config twice as slow it should fail, every time.

The data waits 2 ms per sample (a storage read, no CPU: the same on a busy machine), 480
samples in batches of 16 on 2 workers; the slower variant waits 4 ms. One baseline is measured
with ``loadertune bench --workers 2 --json``, then ``loadertune check ... --baseline`` runs as
a CI job would (a fresh process each time, its exit code counted), the two variants taking
turns so the machine's drift hits both alike.

    python benchmarks/check_gate.py           # 20 runs of each, rewrites its RESULTS.md section
    python benchmarks/check_gate.py --quick   # 3 runs of each, prints only
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

from results_file import finish, provenance

SECTION = "## check: a gate that is not flaky"
LATENCY_S = 0.002
SAMPLES, BATCH, WORKERS = 480, 16, 2
DATA = f"""
import time
import torch
from torch.utils.data import Dataset


class Sleepy(Dataset):
    def __init__(self, latency_s):
        self.latency_s = latency_s

    def __len__(self):
        return {SAMPLES}

    def __getitem__(self, index):
        time.sleep(self.latency_s)
        return torch.full((8,), float(index))


same = Sleepy({LATENCY_S})
slower = Sleepy({2 * LATENCY_S})
"""


@dataclass
class Runs:
    """What the checks of one variant gave: exit codes, ratios to the baseline, allowances."""

    name: str
    codes: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    allowed: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # CPUs other processes kept busy
    wall_s: list[float] = field(default_factory=list)


def loadertune(*args: str, cwd: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "loadertune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GITHUB_ACTIONS": ""},
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"loadertune {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done.returncode


def check_once(runs: Runs, here: Path, index: int) -> None:
    out = here / f"{runs.name}_{index}.json"
    began = time.perf_counter()
    code = loadertune(
        "check", f"data.py:{runs.name}", "--baseline", "base.json", "--json", str(out), cwd=here
    )
    runs.wall_s.append(time.perf_counter() - began)
    block = json.loads(out.read_text())["check"]
    (figures,) = [c["figures"] for c in block["checks"]]
    runs.others.append(block.get("others_cpus") or 0.0)
    runs.codes.append(code)
    runs.ratios.append(figures["ratio"])
    runs.allowed.append(figures["allowed"])
    print(
        f"{runs.name} {index + 1}: exit {code}, {figures['ratio']:.3f}x, "
        f"allowed {figures['allowed']:.1%}",
        file=sys.stderr,
        flush=True,
    )


def render(
    variants: list[Runs], base: dict[str, float], load: list[list[float]], argv: list[str]
) -> str:
    same, slower = variants
    lines = [
        SECTION,
        "",
        provenance("check_gate.py", argv) + " Baseline: `loadertune bench data.py:same "
        f"--workers {WORKERS} --batch-size {BATCH} --json base.json` (3 interleaved runs, "
        f"epoch {base['median'] * 1000:.0f} ms, {base['low'] * 1000:.0f}-"
        f"{base['high'] * 1000:.0f} ms); then, taking turns, `loadertune check "
        "data.py:same|slower --baseline base.json` in a fresh process each (5 runs after the "
        "warm-up, tolerance 10%). Data: "
        f"{SAMPLES} samples waiting {LATENCY_S * 1000:.0f} ms each (`slower`: "
        f"{2 * LATENCY_S * 1000:.0f} ms), batches of {BATCH}, {WORKERS} workers.",
        "",
        "| variant | checks | passed (exit 0) | failed (exit 1) | epoch / baseline's, median "
        "(range) | allowed, median (range) | others' CPUs, median (max) | wall per check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for runs in variants:
        lines.append(
            f"| {runs.name} | {len(runs.codes)} | {runs.codes.count(0)} | {runs.codes.count(1)} "
            f"| {_ratio(runs.ratios)} | {_share(runs.allowed)} "
            f"| {statistics.median(runs.others):.2f} ({max(runs.others):.2f}) "
            f"| {statistics.median(runs.wall_s):.1f} s |"
        )
    lines += [
        "",
        f"- against a baseline of the same config: **{same.codes.count(0)} of {len(same.codes)} "
        "passed** (wanted: at least 19 of 20);",
        f"- against a config twice as slow: **{slower.codes.count(1)} of {len(slower.codes)} "
        "failed** (wanted: all).",
        f"- load average (1/5/15 min) at start {_load(load[0])}, at end {_load(load[1])}; "
        "others' CPUs: what other processes kept busy on this machine's CPUs during each "
        "check (`others_cpus`, the hypervisor's steal included).",
        "",
    ]
    return "\n".join(lines)


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}x ({min(values):.3f}-{max(values):.3f})"


def _share(values: list[float]) -> str:
    return f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each; prints only")
    parser.add_argument("--runs", type=int, default=20, help="checks of each variant")
    args = parser.parse_args(argv)
    count = 3 if args.quick else args.runs
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="check_gate_") as folder:
        here = Path(folder)
        (here / "data.py").write_text(DATA)
        loadertune(
            "bench",
            "data.py:same",
            "--workers",
            str(WORKERS),
            "--batch-size",
            str(BATCH),
            "--json",
            "base.json",
            cwd=here,
        )
        base = json.loads((here / "base.json").read_text())["best"]["epoch_s"]
        variants = [Runs("same"), Runs("slower")]
        for index in range(count):
            for runs in variants if index % 2 == 0 else variants[::-1]:
                check_once(runs, here, index)
    text = render(variants, base, [load_start, list(os.getloadavg())], argv)
    return finish(SECTION, text, args.quick)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
