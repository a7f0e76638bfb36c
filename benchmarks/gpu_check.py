"""Does loadertune tell the truth when the step runs on a GPU? (issue 17)

Two workloads on the GPU, batch 64: the classic example (1000 in-memory rows of 100 floats,
``nn.Linear(100, 2)``) and a small conv net on in-memory images. Each step copies its batch
with ``.to(cuda, non_blocking=True)`` and never synchronizes (no ``loss.item()``): the step
returns before its kernels are done, the trap this checks. Three checks:

1. **Epochs.** For pin_memory off and on and 0, 2 and 8 workers: loadertune's epoch figure
   (``loadertune.bench``, one trial at a time) against a hand-timed epoch of the same loader,
   ``torch.cuda.synchronize()`` before the first batch and after the last step; interleaved
   rounds, medians, the ratio (done when within 5%).
2. **Picks.** ``loadertune.tune`` with a short budget on each workload: its pick, pin on
   against pin off where both were measured (pin picked only where it wins), the copy probe
   (one batch pinned and unpinned), the verdict and the advice.
3. **Idle time.** One epoch of loadertune's trial run under ``torch.profiler`` (CPU and CUDA
   activities): loadertune's GPU idle share (CUDA events between steps) against the
   profiler's kernels of the same epoch (see ``gpu_trace.py``).

    PYTHONPATH=src python3 benchmarks/gpu_check.py                 # on a GPU, ~2-3 min
    PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu --quick   # smoke, no GPU

Writes ``gpu_check.json`` (rewritten after every measurement, so a run cut short keeps what
it measured), ``gpu_check.md`` (the RESULTS.md section) and ``gpu_check.log`` into ``--out``
(default: ``$OUT``, else the current directory). Without CUDA it prints "no CUDA device:
nothing to check" and exits 0. ``--write-results gpu_check.md`` merges a section made
earlier into benchmarks/RESULTS.md (its "## " section only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_report
from gpu_trace import trace_view
from gpu_workloads import Dev, Rows, workloads

SECTION = gpu_report.SECTION
BATCH_SIZE = 64
HAND_TIMEOUT_S = 60  # a hand epoch's batch that takes longer raises (DataLoader(timeout=...))
EPOCHS_SHARE = 0.55  # the epoch rounds stop at this share of the deadline: tune and the
# profiler still fit


@dataclass(frozen=True)
class Plan:
    """What one run measures: worker counts, rounds, budgets, and a deadline after which the
    sections left are skipped (the whole run must fit in 5 minutes on one GPU)."""

    workers: tuple[int, ...]
    rounds: int
    tune_budget_s: float
    profiled_workers: tuple[int, ...]
    conv_images: int
    deadline_s: float
    conv_side: int | None = None  # None: as /dev/shm allows (see image_side)


FULL = Plan((0, 2, 8), 7, 20.0, (0, 2), 2048, 240.0)
QUICK = Plan((0, 2), 1, 3.0, (0,), 256, 120.0, conv_side=16)


class Log:
    """Progress lines on stderr (flushed: a partial log explains a timeout) and in a file."""

    def __init__(self, path: Path) -> None:
        self.path, self.began = path, time.perf_counter()
        path.write_text("")

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.began:6.1f} s] {message}"
        print(line, file=sys.stderr, flush=True)
        with self.path.open("a") as file:
            file.write(line + "\n")

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.began


def config_of(workers: int, pin: bool) -> Any:
    from loadertune import LoaderConfig

    return LoaderConfig(workers, pin_memory=pin)


def hand_epoch_s(dataset: Rows, config: Any, step: Callable[[Any], None], dev: Dev) -> float:
    """One epoch of the plain recipe, timed from a synchronize to a synchronize."""
    from torch.utils.data import DataLoader

    timeout = HAND_TIMEOUT_S if config.num_workers else 0
    dev.sync()
    begin = time.perf_counter()
    loader = DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, timeout=timeout, **config.to_kwargs()
    )
    for batch in loader:
        step(batch)
    dev.sync()
    return time.perf_counter() - begin


def tool_trial(workload: Any, config: Any) -> Any:
    """One loadertune trial of ``config``: bench with one repeat, no diagnosis or warm-up."""
    import loadertune

    result = loadertune.bench(
        workload, [config], repeats=1, diagnose=False, warm_up=False, ranks=None
    )
    return result.trials[0]


def trial_facts(trial: Any) -> dict[str, Any]:
    return {
        "epoch_s": trial.epoch_s,
        "measured": trial.epoch_measured,
        "gpu_idle": trial.gpu_idle_fraction,
        "cpu_wait": trial.data_wait_fraction,
        "device": trial.device,
        "error": str(trial.error) if trial.error else None,
    }


class Check:
    """The run's state: the document, rewritten after every measurement, and the log."""

    def __init__(self, out: Path, dev: Dev, plan: Plan, argv: list[str]) -> None:
        self.out, self.dev, self.plan = out, dev, plan
        self.log = Log(out / "gpu_check.log")
        self.doc: dict[str, Any] = {
            "device": dev.kind,
            "gpu": dev.name,
            "argv": argv,
            "plan": plan.__dict__,
            "epochs": {},
            "picks": {},
            "idle": {},
            "errors": [],
            "skipped": [],
            "facts": _facts(),
        }

    def save(self) -> None:
        self.doc["elapsed_s"] = round(self.log.elapsed_s, 1)
        _atomic(self.out / "gpu_check.json", json.dumps(self.doc, indent=1, default=str))
        _atomic(self.out / "gpu_check.md", gpu_report.section(self.doc))

    def guarded(self, what: str, work: Callable[[], None]) -> None:
        """Run ``work``; a failure is logged and kept, and the other checks still run."""
        if self.log.elapsed_s > self.plan.deadline_s:
            self.log(f"skipped {what}: past the {self.plan.deadline_s:g} s deadline")
            self.doc["skipped"].append(what)
            self.save()
            return
        try:
            work()
        except Exception as exc:
            self.log(f"FAILED {what}: {type(exc).__name__}: {exc}")
            self.doc["errors"].append(
                {
                    "what": what,
                    "error": f"{type(exc).__name__}: {exc}",
                    "trace": traceback.format_exc(limit=6),
                }
            )
        self.save()


def check_epochs(check: Check, name: str, dataset: Rows, step: Callable[[Any], None]) -> None:
    """Interleaved rounds: per config one hand epoch and one tool trial, which goes first
    alternating round by round, configs rotated, so drift hits both alike. Rounds stop at the
    plan's share of the deadline (the medians of the rounds done stand)."""
    from loadertune import Workload

    workload = Workload(dataset, step=step, batch_size=BATCH_SIZE, name=name)
    configs = [config_of(w, pin) for pin in (False, True) for w in check.plan.workers]
    rows = check.doc["epochs"].setdefault(name, {})
    for r in range(check.plan.rounds):
        if r and check.log.elapsed_s > check.plan.deadline_s * EPOCHS_SHARE:
            check.log(f"{name}: {r} of {check.plan.rounds} rounds, the rest past the deadline")
            break
        for i in range(len(configs)):
            c = (i + r) % len(configs)
            config = configs[c]
            row = rows.setdefault(config.label(), {"hand_s": [], "tool": [], "hand_errors": []})
            for side in ("hand", "tool") if (r + c) % 2 else ("tool", "hand"):
                if side == "hand":
                    _hand(check, row, dataset, config, step)
                else:
                    row["tool"].append(trial_facts(tool_trial(workload, config)))
            last = row["tool"][-1]
            hand = row["hand_s"][-1] if row["hand_s"] else None
            check.log(
                f"{name} round {r + 1}/{check.plan.rounds} {config.label()}: hand {hand} s, "
                f"tool {last['epoch_s']} s, GPU idle {last['gpu_idle']}, error {last['error']}"
            )
        check.save()


def _hand(
    check: Check, row: dict[str, Any], dataset: Rows, config: Any, step: Callable[[Any], None]
) -> None:
    """One hand epoch into ``row``; one that raises is kept as an error, the rounds go on."""
    try:
        row["hand_s"].append(hand_epoch_s(dataset, config, step, check.dev))
    except Exception as exc:
        row["hand_errors"].append(f"{type(exc).__name__}: {exc}")


def check_pick(check: Check, name: str, dataset: Rows, step: Callable[[Any], None]) -> None:
    import loadertune

    workload = loadertune.Workload(dataset, step=step, batch_size=BATCH_SIZE, name=name)
    result = loadertune.tune(workload, budget_s=check.plan.tune_budget_s, ranks=None)
    best = result.best
    measured = {
        s.config.label(): {
            "epoch_s": s.epoch_s.median if s.epoch_s else None,
            "n": len(s.ok_trials),
            "pin": s.config.pin_memory,
            "workers": s.config.num_workers,
            "gpu_idle": _median([t.gpu_idle_fraction for t in s.ok_trials]),
        }
        for s in result.summaries()
    }
    check.doc["picks"][name] = {
        "pick": best.config.label() if best else None,
        "pick_pins": bool(best and best.config.pin_memory),
        "reason": (result.tuning or {}).get("reason"),
        "noise": (result.tuning or {}).get("noise"),
        "measured": measured,
        "copy": (result.diagnosis or {}).get("copy"),
        "diagnosis_errors": (result.diagnosis or {}).get("errors"),
        "verdict": (result.verdict or {}).get("sentence"),
        "advice": [a["code"] + ": " + a["finding"] + " " + a["fix"] for a in result.advice],
    }
    check.log(f"{name} tune: pick {check.doc['picks'][name]['pick']}; measured {list(measured)}")


def check_idle(
    check: Check, name: str, dataset: Rows, step: Callable[[Any], None], workers: int
) -> None:
    """One tool trial under the profiler; both views of the same epoch."""
    from torch.profiler import profile

    from loadertune import Workload

    workload = Workload(dataset, step=step, batch_size=BATCH_SIZE, name=name)
    config = config_of(workers, False)
    with profile(activities=check.dev.activities) as prof:
        trial = tool_trial(workload, config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text()).get("traceEvents", [])
    view = trace_view(events, check.dev.busy)
    check.doc["idle"].setdefault(name, {})[config.label()] = {
        "tool": trial_facts(trial),
        "batches": trial.batches,
        "marked": len(trial.gpu_start_s),
        "profiler": view,
    }
    check.log(
        f"{name} {config.label()} profiled: tool idle {trial.gpu_idle_fraction}, profiler "
        f"between steps {view['between_steps_idle']}, kernels {view['kernel_idle']} "
        f"({view['steps']} of {trial.batches} steps seen)"
    )


def warm_up(dev: Dev, dataset: Rows, step: Callable[[Any], None]) -> None:
    """First calls (CUDA context, cuDNN, allocator) before anything is timed."""
    for _ in range(3):
        hand_epoch_s(dataset, config_of(0, False), step, dev)


def run(out: Path, dev: Dev, plan: Plan, argv: list[str]) -> int:
    """Every check, each guarded; the document and the section are in ``out`` after each."""
    if dev.kind == "cpu":  # the smoke run pins nothing, and torch says so on every loader
        warnings.filterwarnings(
            "ignore", message=".*pin_memory.*no accelerator", category=UserWarning
        )
    check = Check(out, dev, plan, argv)
    check.log(f"device {dev.name}; plan {plan}")
    loads = workloads(dev, plan)
    for name, (dataset, step, what) in loads.items():
        check.doc.setdefault("workloads", {})[name] = what
        check.guarded(f"warm-up {name}", lambda d=dataset, s=step: warm_up(dev, d, s))
    for name, (dataset, step, _) in loads.items():
        check.guarded(
            f"epochs {name}", lambda n=name, d=dataset, s=step: check_epochs(check, n, d, s)
        )
    for name, (dataset, step, _) in loads.items():
        check.guarded(f"tune {name}", lambda n=name, d=dataset, s=step: check_pick(check, n, d, s))
    for name, (dataset, step, _) in loads.items():
        for w in plan.profiled_workers:
            check.guarded(
                f"profile {name} w={w}",
                lambda n=name, d=dataset, s=step, w=w: check_idle(check, n, d, s, w),
            )
    check.log(f"done: {len(check.doc['errors'])} failed, {len(check.doc['skipped'])} skipped")
    check.save()
    print(gpu_report.section(check.doc))
    return 0


def _facts() -> dict[str, Any]:
    import platform
    from datetime import datetime, timezone

    import torch

    from loadertune.engine.machine import usable_cpus

    return {
        "created": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpus": usable_cpus().usable,
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _atomic(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def write_results(section_file: Path, results: Path) -> int:
    """Merge a section made by an earlier run into RESULTS.md (only that "## " section)."""
    from results_file import write_section

    text = section_file.read_text()
    if not text.startswith(SECTION):
        print(f"{section_file} does not start with {SECTION!r}", file=sys.stderr)
        return 2
    write_section(results, SECTION, text.rstrip("\n") + "\n")
    print(f"wrote {SECTION!r} into {results}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="where to write (default: $OUT, else .)")
    parser.add_argument("--write-results", type=Path, metavar="SECTION.md")
    parser.add_argument("--results", type=Path, help="the RESULTS.md to merge into")
    args = parser.parse_args(argv)
    if args.write_results is not None:
        from results_file import RESULTS_PATH

        return write_results(args.write_results, args.results or RESULTS_PATH)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    out = args.out or Path(os.environ.get("OUT") or ".")
    out.mkdir(parents=True, exist_ok=True)
    return run(
        out, Dev(args.device), QUICK if args.quick else FULL, sys.argv[1:] if argv is None else argv
    )


if __name__ == "__main__":
    sys.exit(main())
