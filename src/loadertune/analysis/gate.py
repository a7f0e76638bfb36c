"""The rules ``loadertune check`` applies, as pure functions of records: a measured result (one
config, repeated) and, optionally, a baseline result. Each rule gives a :class:`Check`: its
name, whether it passed, and one paragraph with both figures and the verdict.

- **data wait**: the step waits for data at most ``max_wait`` of the loop's time (median of the
  repeats). Without a step the loop only waits, so the rule needs one.
- **epoch vs baseline**: the median epoch is at most the baseline's times ``1 + allowed``,
  where ``allowed`` is the larger of ``tolerance`` and the noise of both runs (each side's
  range over its median, added): a difference the repeats themselves show is not a regression.
  The baseline's figure is for the same config where it measured it, else its best.
- **every run completes**: a repeat that failed (a dataset raising, a worker dying) fails the
  gate; it is a check only when one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadertune.analysis.compare import (
    baseline_summary,
    machine_differences,
    noise,
    workload_differences,
)
from loadertune.analysis.explanation import result_verdict
from loadertune.records import defaults, units
from loadertune.records.result import Result, Summary, spread_dict
from loadertune.records.stats import Spread

WAIT, REGRESSION, RUNS = "data wait", "epoch vs baseline", "every run completes"


@dataclass(frozen=True)
class Check:
    """One rule's outcome; ``figures`` holds the numbers the paragraph quotes (JSON-ready)."""

    name: str
    passed: bool
    paragraph: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "paragraph": self.paragraph,
            "figures": self.figures,
        }


def gate(
    measured: Result,
    baseline: Result | None = None,
    *,
    max_wait: float | None = defaults.MAX_WAIT,
    tolerance: float = defaults.CHECK_TOLERANCE,
) -> list[Check]:
    """The checks on ``measured`` (its one config): the wait rule unless ``max_wait`` is None,
    the regression rule when there is a baseline, and a failed check for any failed repeat.

    >>> [c.passed for c in gate(result, baseline, max_wait=0.2)]  # doctest: +SKIP
    [True, False]
    """
    summary = measured_summary(measured)
    if summary is None or summary.failed:
        return [runs_check(summary)]
    checks = [runs_check(summary)] if summary.errors else []
    verdict = _verdict(measured)
    if max_wait is not None:
        checks.append(wait_check(summary, max_wait, verdict))
    if baseline is not None:
        checks.append(regression_check(measured, baseline, tolerance, verdict))
    return checks


def measured_summary(measured: Result) -> Summary | None:
    """The config that was checked: the result's first (a check measures one)."""
    summaries = measured.summaries()
    return summaries[0] if summaries else None


def runs_check(summary: Summary | None) -> Check:
    """Failed: which repeats failed, and why (the first reason)."""
    if summary is None:
        return Check(RUNS, False, "Nothing was measured.")
    failed = len(summary.trials) - len(summary.ok_trials)
    paragraph = (
        f"{failed} of {len(summary.trials)} runs of {summary.config.label()} failed: "
        f"{summary.errors[0]}."
    )
    return Check(RUNS, False, paragraph, {"failed_runs": failed, "errors": summary.errors})


def wait_check(summary: Summary, max_wait: float, verdict: str) -> Check:
    """Passes when the median share of the loop spent waiting for data is at most ``max_wait``."""
    wait = summary.figure("data_wait_fraction")
    if wait is None:
        return Check(WAIT, False, f"No batch was measured at {summary.config.label()}.")
    passed = wait.median <= max_wait
    how = "within" if passed else "more than"
    paragraph = (
        f"The step waits for data {units.percent(wait.median)} of the time at "
        f"{summary.config.label()} ({_runs(wait, units.percent)}), {how} the "
        f"{units.percent(max_wait)} allowed. {verdict}"
    )
    figures = {"wait_fraction": spread_dict(wait), "max_wait": max_wait}
    return Check(WAIT, passed, paragraph.strip(), figures)


def regression_check(measured: Result, baseline: Result, tolerance: float, verdict: str) -> Check:
    """Passes when the median epoch is within the allowed share of the baseline's."""
    summary = measured_summary(measured)
    theirs_summary = baseline_summary(baseline, summary.config) if summary else None
    mine = summary.epoch_s if summary else None
    theirs = theirs_summary.epoch_s if theirs_summary else None
    if summary is None or theirs_summary is None or mine is None or theirs is None:
        return Check(REGRESSION, False, "The baseline has no config that ran to compare with.")
    ratio = mine.median / theirs.median
    both = noise(mine) + noise(theirs)
    allowed = max(tolerance, both)
    passed = ratio - 1 <= allowed
    sentences = [
        _comparison(summary, theirs_summary, ratio, passed),
        f"the gate allows {units.percent(allowed)} more, the larger of the tolerance "
        f"({units.percent(tolerance)}) and the noise of both runs ({units.percent(both)}: "
        "each side's range over its median, added).",
        verdict,
        *_context(measured, baseline, summary, theirs_summary),
    ]
    figures = {
        "epoch_s": spread_dict(mine),
        "baseline_epoch_s": spread_dict(theirs),
        "baseline_config": theirs_summary.config.label(),
        "ratio": ratio,
        "noise": both,
        "tolerance": tolerance,
        "allowed": allowed,
    }
    return Check(REGRESSION, passed, " ".join(s for s in sentences if s), figures)


def baseline_warnings(measured: Result, baseline: Result) -> list[str]:
    """What to warn about before trusting the comparison: another machine, another workload."""
    out = []
    machine = machine_differences(measured, baseline)
    if machine:
        out.append(f"the baseline was measured on another machine ({'; '.join(machine)})")
    workload = workload_differences(measured, baseline)
    if workload:
        out.append(f"the baseline measured another workload ({'; '.join(workload)})")
    return out


def _comparison(mine: Summary, theirs: Summary, ratio: float, passed: bool) -> str:
    head = "Slower than the baseline" if not passed else "Keeps up with the baseline"
    return (
        f"{head}: an epoch at {mine.config.label()} takes {units.seconds(_median(mine))} "
        f"({_runs(mine.epoch_s, units.seconds)}) against the baseline's "
        f"{units.seconds(_median(theirs))} at {theirs.config.label()} "
        f"({_runs(theirs.epoch_s, units.seconds)}), {ratio:.2f}x as long;"
    )


def _context(measured: Result, baseline: Result, mine: Summary, theirs: Summary) -> list[str]:
    """The sentences that qualify a comparison: another config, verdict, machine or workload."""
    out = []
    if theirs.config != mine.config:
        out.append(f"The baseline did not measure {mine.config.label()}; its best is compared.")
    kind = (baseline.verdict or {}).get("kind")
    if kind and kind != (measured.verdict or _verdict_dict(measured)).get("kind"):
        out.append(f"The baseline was {kind}-bound.")
    out += [f"Note: {warning}." for warning in baseline_warnings(measured, baseline)]
    return out


def _verdict(measured: Result) -> str:
    return str(_verdict_dict(measured).get("sentence") or "")


def _verdict_dict(measured: Result) -> dict[str, Any]:
    return result_verdict(measured) or {}


def _runs(value: Spread | None, fmt: Any) -> str:
    if value is None or value.n < 2:
        return "one run"
    return f"median of {value.n} runs, {fmt(value.low)} to {fmt(value.high)}"


def _median(summary: Summary) -> float | None:
    return summary.epoch_s.median if summary.epoch_s else None
