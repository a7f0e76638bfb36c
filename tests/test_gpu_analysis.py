"""What the analysis makes of GPU figures: the verdict rests on the GPU's idle time between
steps where it was measured; the advice says when pinning costs more than it saves and when
non_blocking=True would help."""

from __future__ import annotations

from typing import Any

from fakes import MACHINE, WORKLOAD, classic_like, timed
from loadertune import LoaderConfig, Result, Trial
from loadertune.analysis.advice import findings
from loadertune.analysis.explanation import result_verdict
from loadertune.analysis.verdict import COMPUTE, INPUT, trial_bottleneck


def _on_gpu(trial: Trial, idle: float) -> Trial:
    """Mark every step of ``trial`` as the GPU saw it: busy 1 ms, then idle so that ``idle``
    of the span passes between steps."""
    busy_s, n = 0.001, trial.batches
    gap_s = idle * busy_s * n / ((n - 1) * (1 - idle))  # idle over the span, first to last
    trial.device = "cuda:0 Test GPU"
    trial.gpu_start_s = [k * (busy_s + gap_s) for k in range(n)]
    trial.gpu_end_s = [s + busy_s for s in trial.gpu_start_s]
    return trial


def test_an_idle_gpu_makes_a_step_that_never_waits_input_bound() -> None:
    # the loop barely waits (its step returns before its work is done) ...
    trial = timed(0, wait_s=0.00001, step_s=0.001)
    assert trial_bottleneck(trial) is not None and trial_bottleneck(trial).kind == COMPUTE
    # ... but the GPU sat idle 40% of the time between steps
    verdict = trial_bottleneck(_on_gpu(trial, 0.4))
    assert verdict is not None and verdict.kind == INPUT and verdict.degree == "highly"
    assert verdict.gpu_idle_fraction is not None and abs(verdict.gpu_idle_fraction - 0.4) < 1e-6


def test_the_sentence_names_the_gpus_idle_time_and_a_cpu_verdict_reads_as_before() -> None:
    trials = [_on_gpu(timed(0, wait_s=0.0001, step_s=0.001, repeat=r), 0.31) for r in range(3)]
    verdict = result_verdict(Result(machine=MACHINE, workload=WORKLOAD, trials=trials))
    assert verdict is not None
    assert "the GPU sat idle 31% of the time between steps" in verdict["sentence"]
    assert verdict["gpu_idle_fraction"] is not None
    plain = result_verdict(classic_like())
    assert plain is not None and "gpu_idle_fraction" not in plain
    assert "GPU" not in plain["sentence"]


def _copy(pin_s: float, pinned_s: float, plain_s: float) -> dict[str, Any]:
    return {
        "bytes": 2**20,
        "plain_s": plain_s,
        "pin_s": pin_s,
        "pinned_s": pinned_s,
        "pinned_enqueue_s": 0.00002,
        "pin_net_s": pin_s + pinned_s - plain_s,
        "rounds": 5,
    }


def _diagnosis(copy: dict[str, Any], step_s: float = 0.002) -> dict[str, Any]:
    return {
        "copy": copy,
        "step_alone": {"samples_per_s": 8 / step_s, "batches": 100, "seconds": 100 * step_s},
    }


def _codes(result: Result) -> list[str]:
    return [f["code"] for f in findings(result)]


def test_pinning_that_costs_more_than_it_saves_is_advised_against() -> None:
    result = classic_like(
        diagnosis=_diagnosis(_copy(pin_s=0.0008, pinned_s=0.0003, plain_s=0.0009))
    )
    found = {f["code"]: f for f in findings(result)}
    assert "pin_memory" in found and "non_blocking" not in found
    assert "pinning costs 0.2 ms more per batch than it saves" in found["pin_memory"]["finding"]
    assert found["pin_memory"]["fix"] == "Keep pin_memory=False."


def test_a_pinned_copy_worth_overlapping_asks_for_non_blocking() -> None:
    result = classic_like(
        diagnosis=_diagnosis(_copy(pin_s=0.0002, pinned_s=0.0003, plain_s=0.0009))
    )
    found = {f["code"]: f for f in findings(result)}
    assert "pin_memory" not in found and "non_blocking" in found
    assert "15% of a step alone" in found["non_blocking"]["finding"]
    assert "(pin_memory=True)" in found["non_blocking"]["fix"]
    tiny = classic_like(diagnosis=_diagnosis(_copy(0.00001, 0.00002, 0.0001), step_s=0.01))
    assert "non_blocking" not in _codes(tiny)  # 0.2% of a step: nothing worth overlapping


def test_where_the_trials_picked_pinning_the_probe_does_not_contradict_them() -> None:
    trials = [timed(0, wait_s=0.001, step_s=0.001, repeat=r) for r in range(3)]
    for t in trials:
        t.config = LoaderConfig(0, pin_memory=True)
    copy = _copy(pin_s=0.0008, pinned_s=0.0003, plain_s=0.0009)
    result = Result(machine=MACHINE, workload=WORKLOAD, trials=trials, diagnosis=_diagnosis(copy))
    assert "pin_memory" not in _codes(result) and "non_blocking" in _codes(result)


def _rendered(result: Result) -> str:
    import io

    from rich.console import Console

    from loadertune.report.table import caption, results_table

    console = Console(file=io.StringIO(), width=120)
    console.print(results_table(result))
    console.print(caption(result))
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_the_table_shows_the_gpus_idle_time_only_where_it_was_measured() -> None:
    trials = [_on_gpu(timed(0, wait_s=0.0001, step_s=0.001, repeat=r), 0.31) for r in range(3)]
    shown = _rendered(Result(machine=MACHINE, workload=WORKLOAD, trials=trials))
    assert "GPU idle" in shown and " 31% " in shown
    assert "sat idle between steps" in shown
    assert "GPU" not in _rendered(classic_like())


def test_the_report_names_the_gpu_the_step_ran_on() -> None:
    from loadertune.report.markdown import report_markdown

    trials = [_on_gpu(timed(0, wait_s=0.0001, step_s=0.001, repeat=r), 0.31) for r in range(3)]
    text = report_markdown(Result(machine=MACHINE, workload=WORKLOAD, trials=trials), False)
    assert "- step on cuda:0 Test GPU: clocks synchronized" in text and "GPU idle" in text
    assert "step on" not in report_markdown(classic_like(), False)
