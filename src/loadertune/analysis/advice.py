"""Advice as data: each finding names what was seen, the fix, and the measurement behind it.

Pure: reads a result (its trials, verdicts and diagnosis) and measures nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadertune.analysis.explanation import headroom
from loadertune.analysis.pinning import non_blocking, pin_costs_more
from loadertune.analysis.verdict import IDLE_CPU_SHARE, INPUT, TRANSFER, summary_bottleneck
from loadertune.records import units

if TYPE_CHECKING:
    from loadertune.records.result import Result, Summary

BATCHED_SPEEDUP = 1.5  # a batched fetch this much faster than sample-by-sample is worth a change
COMPACT_MIN_BYTES = 64 * 2**10  # below this a batch passes between processes in well under 1 ms
STEP_BOUND_SHARE = 0.9  # the pick reaches this share of the step alone: loading is not the limit
STARTUP_WORTH = 0.10  # startup this share of the run is worth starting workers only once


def findings(result: Result) -> list[dict[str, Any]]:
    """Every finding that applies, most useful first."""
    best = result.best
    if best is None or summary_bottleneck(best) is None:
        return []
    checks = (
        _batched_fetch,
        _compact_dtype,
        _persistent,
        _more_workers,
        pin_costs_more,
        non_blocking,
        _step_bound,
    )
    return [f for check in checks if (f := check(result, best)) is not None]


def _finding(code: str, finding: str, fix: str, evidence: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "finding": finding, "fix": fix, "evidence": evidence}


def _loading_matters(best: Summary) -> bool:
    verdict = summary_bottleneck(best)
    return verdict is not None and verdict.kind in (INPUT, TRANSFER)


def _batched_fetch(result: Result, best: Summary) -> dict[str, Any] | None:
    probe = (result.diagnosis or {}).get("batched_fetch") or {}
    speedup = probe.get("speedup")
    if not speedup or speedup < BATCHED_SPEEDUP or not _loading_matters(best):
        return None
    batch = result.workload.get("batch_size")
    return _finding(
        "batched_fetch",
        f"Indexing sample by sample and collating takes {units.seconds(probe['per_sample_s'])} "
        f"per batch; dataset[indices] for the whole batch at once takes "
        f"{units.seconds(probe['batched_s'])}, {speedup:.3g}x faster (measured without workers).",
        "Fetch whole batches: DataLoader(dataset, sampler=BatchSampler(RandomSampler(dataset), "
        f"batch_size={batch}, drop_last=False), batch_size=None), or give your Dataset a "
        "__getitems__(indices) that builds the batch in one go.",
        probe,
    )


def _compact_dtype(result: Result, best: Summary) -> dict[str, Any] | None:
    facts = (result.diagnosis or {}).get("batch") or {}
    floats = facts.get("float_bytes") or 0
    transfer = [s for s in result.summaries() if _is(s, TRANSFER)]
    if floats < COMPACT_MIN_BYTES or not (transfer or _is(best, TRANSFER)):
        return None
    dtypes = ", ".join(facts.get("float_dtypes") or [])
    seen = f"Each batch carries {units.size(floats)} of {dtypes} tensors"
    evidence = {**facts, "transfer_bound": [s.config.label() for s in transfer]}
    if facts.get("uint8_lossless"):
        return _finding(
            "compact_dtype",
            f"{seen} whose values are whole numbers in 0..255, and "
            f"{_configs(transfer)} transfer-bound.",
            "Return uint8 from the dataset and convert in the step (batch.float()): "
            "a quarter of the float32 bytes to pass from the workers.",
            evidence,
        )
    if "float64" in dtypes:
        return _finding(
            "compact_dtype",
            f"{seen}, and {_configs(transfer)} transfer-bound.",
            "Return float32 rather than float64 (half the bytes), or bfloat16/float16 where "
            "your model takes it.",
            evidence,
        )
    return None


def _persistent(result: Result, best: Summary) -> dict[str, Any] | None:
    verdict, config = summary_bottleneck(best), best.config
    if verdict is None or not config.num_workers or config.persistent_workers or result.epochs < 2:
        return None
    share = verdict.startup_share or 0.0
    tried = any(
        s.config.persistent_workers and s.config.num_workers == config.num_workers
        for s in result.summaries()
    )
    if share < STARTUP_WORTH or tried:
        return None
    startup = best.figure("startup_s")
    return _finding(
        "persistent_workers",
        f"Starting the workers takes {units.seconds(startup.median if startup else None)} at "
        f"every epoch, {units.percent(share)} of the {result.epochs}-epoch run.",
        "persistent_workers=True starts them once (measure it: bench --persistent-workers).",
        {"startup_share": share, "epochs": result.epochs},
    )


def _more_workers(result: Result, best: Summary) -> dict[str, Any] | None:
    verdict, busy = summary_bottleneck(best), best.figure("cpu_busy")
    cpus = result.usable_cpus
    most = max(s.config.num_workers for s in result.summaries())
    if verdict is None or verdict.kind != INPUT or verdict.degree != "highly":
        return None
    if not best.config.num_workers or best.config.num_workers < most:
        return None  # without workers no worker waits: the main process loads
    if busy is None or not cpus:
        return None
    if busy.median >= IDLE_CPU_SHARE * cpus:
        return None
    return _finding(
        "more_workers",
        f"At {best.config.label()}, the most workers tried, the step still waits for data "
        f"{units.percent(verdict.wait_fraction)} of the time while only {busy.median:.1f} of "
        f"{cpus} CPUs are busy: the workers wait (storage, network), they do not compute.",
        "Try more workers than CPUs: loadertune tune searches above the core count "
        "(--max-workers raises its ceiling).",
        {"wait_fraction": verdict.wait_fraction, "cpu_busy": busy.median, "usable_cpus": cpus},
    )


def _step_bound(result: Result, best: Summary) -> dict[str, Any] | None:
    room = headroom(result)
    if room is None or room["pick_share"] < STEP_BOUND_SHARE:
        return None
    return _finding(
        "step_bound",
        f"The pick runs at {units.percent(room['pick_share'])} of the speed of the step alone "
        f"on cached batches ({units.rate(room['pick_samples_per_s'])} against "
        f"{units.rate(room['best_possible_samples_per_s'])} samples/s): loading is no longer "
        "the limit.",
        "To go faster, speed up the step itself (a larger batch, mixed precision, "
        "torch.compile), not the loader.",
        {k: v for k, v in room.items() if k != "sentence"},
    )


def _is(summary: Summary, kind: str) -> bool:
    verdict = summary_bottleneck(summary)
    return verdict is not None and verdict.kind == kind


def _configs(summaries: list[Summary]) -> str:
    if not summaries:
        return "the pick is"
    labels = ", ".join(s.config.label() for s in summaries)
    return f"{labels} {'is' if len(summaries) == 1 else 'are'}"
