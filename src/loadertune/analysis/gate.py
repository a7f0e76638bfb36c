"""The rules ``loadertune check`` applies, as pure functions of records: a measured result (one
config, repeated) and, optionally, a baseline result. Each rule gives a :class:`Check`: its
name, whether it passed, and one paragraph with both figures and the verdict.

- **data wait**: the step waits for data at most ``max_wait`` of the loop's time (median of the
  repeats). Without a step the loop only waits, so the rule needs one.
- **epoch vs baseline**: the median epoch is at most the baseline's times ``1 + allowed``,
  where ``allowed`` is the larger of ``tolerance`` and the noise of both runs (each side's
  interquartile range over its median, added): a difference the repeats themselves show is not
  a regression. The baseline's figure is for the same config where it measured it, else its
  best. An epoch of a job of several epochs with persistent workers is its share of the job
  (the workers start once).
- **every run completes**: a repeat that failed (a dataset raising, a worker dying) fails the
  gate; it is a check only when one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadertune.analysis.compare import (
    baseline_summary,
    is_online,
    machine_differences,
    noise,
    per_epoch,
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
        f"The step waits for data {_share(wait.median, max_wait)} of the time at "
        f"{summary.config.label()} ({_runs(wait, units.percent)}), {how} the "
        f"{_share(max_wait, wait.median)} allowed. {verdict}"
    )
    figures = {"wait_fraction": spread_dict(wait), "max_wait": max_wait}
    return Check(WAIT, passed, paragraph.strip(), figures)


def regression_check(measured: Result, baseline: Result, tolerance: float, verdict: str) -> Check:
    """Passes when the median epoch is within the allowed share of the baseline's."""
    summary = measured_summary(measured)
    theirs = baseline_summary(baseline, summary.config) if summary else None
    later = is_online(baseline)  # like with like: the epochs inside the job
    mine_s = per_epoch(summary, later=later) if summary else None
    theirs_s = per_epoch(theirs, later=later) if theirs else None
    if summary is None or theirs is None or mine_s is None or theirs_s is None:
        return Check(REGRESSION, False, "The baseline has no config that ran to compare with.")
    ratio = mine_s.median / theirs_s.median
    both = noise(summary, later=later) + noise(theirs, later=later)
    allowed = max(tolerance, both)
    passed = ratio - 1 <= allowed
    sentences = [
        _comparison((summary, mine_s), (theirs, theirs_s), passed, later=later),
        f"{ratio:.2f}x as long; the gate allows {units.percent(allowed)} more, the larger of "
        f"the tolerance ({units.percent(tolerance)}) and the noise of both runs "
        f"({units.percent(both)}: each side's interquartile range over its median, added).",
        verdict,
        *_context(measured, baseline, summary, theirs),
    ]
    figures = {
        "epoch_s": spread_dict(mine_s),
        "baseline_epoch_s": spread_dict(theirs_s),
        "baseline_config": theirs.config.label(),
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


def _comparison(
    mine: tuple[Summary, Spread], theirs: tuple[Summary, Spread], passed: bool, *, later: bool
) -> str:
    """The two figures, each with its runs and what kind of epoch it is."""
    head = "Slower than the baseline" if not passed else "Keeps up with the baseline"
    (summary, mine_s), (base, theirs_s) = mine, theirs
    ours = _later(summary) if later else _amortised(summary)
    kind = " (epochs timed inside an online loader's job)" if later else _amortised(base)
    return (
        f"{head}: an epoch at {summary.config.label()}{ours} takes "
        f"{units.seconds(mine_s.median)} ({_runs(mine_s, units.seconds)}) against the "
        f"baseline's {units.seconds(theirs_s.median)} at {base.config.label()}{kind} "
        f"({_runs(theirs_s, units.seconds)}),"
    )


def _amortised(summary: Summary) -> str:
    """Where persistent workers start once in a job of several epochs, an epoch is its share."""
    if summary.config.persistent_workers and summary.epochs > 1:
        return f" (a {summary.epochs}-epoch job's share, its workers started once)"
    return ""


def _later(summary: Summary) -> str:
    """Against an online loader's epochs, persistent workers are running already."""
    if summary.config.persistent_workers and summary.epochs > 1:
        return " (a later epoch, its workers running already)"
    return ""


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


def _share(value: float, other: float) -> str:
    """A percentage, to a tenth where whole ones would read as the other figure."""
    whole = units.percent(value)
    return f"{value * 100:.1f}%" if whole == units.percent(other) else whole
