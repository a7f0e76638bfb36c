"""Spans derived from hand-built trials, and the two text renderers of them (trace, Mermaid)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

import fakes
from loadertune import LoaderConfig, Trial, TrialError
from loadertune.analysis import timeline
from loadertune.analysis.timeline import MAIN, MAIN_LOADING, Span
from loadertune.report.mermaid import gantt
from loadertune.report.trace import chrome_trace


def two_workers(in_order: bool = True, handed: list[float] | None = None) -> Trial:
    """Two workers, four batches; worker 1's first batch waits in the stock (ready before
    the main loop asks for it).

    batch  worker  handed  done   request  ready  step_end
      0      0     0.010  0.050   0.020   0.051   0.054
      1      1     0.010  0.052   0.055   0.056   0.065
      2      0     0.011  0.080   0.070   0.081   0.085
      3      1     0.011  0.095   0.090   0.096   0.100
    """
    return Trial(
        config=LoaderConfig(2, in_order=in_order),
        epoch_batches=4,
        complete=True,
        end_s=0.101,
        request_s=[0.020, 0.055, 0.070, 0.090],
        ready_s=[0.051, 0.056, 0.081, 0.096],
        step_end_s=[0.054, 0.065, 0.085, 0.100],
        done_s=[0.050, 0.052, 0.080, 0.095],
        worker_id=[0, 1, 0, 1],
        n_samples=[8, 8, 8, 4],
        handed_s=[0.010, 0.010, 0.011, 0.011] if handed is None else handed,
    )


def no_workers() -> Trial:
    return Trial(
        config=LoaderConfig(0),
        epoch_batches=3,
        complete=True,
        end_s=0.031,
        request_s=[0.001, 0.011, 0.021],
        ready_s=[0.006, 0.016, 0.026],
        step_end_s=[0.010, 0.020, 0.030],
        done_s=[0.0058, 0.0158, 0.0258],
        worker_id=[-1, -1, -1],
        n_samples=[8, 8, 8],
        handed_s=[0.0012, 0.0112, 0.0212],
    )


def of(spans: list[Span], lane: str, kind: str) -> list[Span]:
    return [s for s in spans if s.lane == lane and s.kind == kind]


def test_main_lane_waits_and_steps_from_the_loop_stamps() -> None:
    spans = timeline.spans(two_workers())
    assert of(spans, MAIN, "start") == [Span(MAIN, "start", 0, 0.0, 0.020)]
    waits, steps = of(spans, MAIN, "wait"), of(spans, MAIN, "step")
    assert [(s.start_s, s.end_s) for s in waits][:2] == [(0.020, 0.051), (0.055, 0.056)]
    assert [(s.start_s, s.end_s) for s in steps][-1] == (0.096, 0.100)
    assert [s.batch for s in waits] == [0, 1, 2, 3]


def test_a_load_starts_when_its_worker_is_free_and_its_indices_were_handed_out() -> None:
    trial = two_workers()
    assert timeline.load_starts(trial) == [0.010, 0.010, 0.050, 0.052]
    loads = of(timeline.spans(trial), "worker 1", "load")
    assert [(s.batch, s.start_s, s.end_s, s.with_startup) for s in loads] == [
        (1, 0.010, 0.052, True),
        (3, 0.052, 0.095, False),
    ]


def test_a_worker_idle_until_handed_work_starts_at_the_handed_time() -> None:
    trial = two_workers(handed=[0.010, 0.010, 0.060, 0.070])
    assert timeline.load_starts(trial)[2:] == [0.060, 0.070]


def test_make_s_leaves_out_each_workers_first_batch_which_includes_its_startup() -> None:
    assert timeline.make_s(two_workers()) == pytest.approx([0.030, 0.043])


def test_transfer_s_counts_only_batches_the_main_loop_was_waiting_for() -> None:
    # batch 1 was done (0.052) before it was requested (0.055): its hand-over is hidden
    assert timeline.transfer_s(two_workers()) == pytest.approx([0.001, 0.001, 0.001])


def test_handed_times_that_contradict_the_batches_are_not_used() -> None:
    # a second epoch re-ran the sampler after this one: its times come after these batches
    trial = two_workers(handed=[0.5, 0.5, 0.5, 0.5])
    assert timeline.load_starts(trial) == [None, None, 0.050, 0.052]
    assert timeline.make_s(trial) == pytest.approx([0.030, 0.043])


def test_out_of_order_batches_do_not_use_handed_times() -> None:
    trial = two_workers(in_order=False)
    assert timeline.load_starts(trial) == [None, None, 0.050, 0.052]
    loads = [s for s in timeline.spans(trial) if s.kind == "load"]
    assert sorted(s.batch for s in loads) == [2, 3]
    assert not any(s.with_startup for s in loads)


def test_without_workers_loading_is_drawn_on_its_own_main_lane() -> None:
    trial = no_workers()
    spans = timeline.spans(trial)
    assert timeline.lane_names(trial) == [MAIN, MAIN_LOADING]
    loads = of(spans, MAIN_LOADING, "load")
    assert [(s.start_s, s.end_s) for s in loads] == [
        (0.001, 0.0058),
        (0.011, 0.0158),
        (0.021, 0.0258),
    ]
    assert not any(s.with_startup for s in loads)
    assert timeline.make_s(trial) == pytest.approx([0.0048] * 3)
    assert timeline.transfer_s(trial) == pytest.approx([0.0002] * 3)


def test_a_failed_trial_with_few_batches_still_has_its_spans() -> None:
    trial = two_workers()
    trial.status, trial.error = "failed", TrialError("exception", "ValueError: bad row", batch=2)
    for values in (trial.request_s, trial.ready_s, trial.step_end_s, trial.done_s):
        del values[2:]
    del trial.worker_id[2:], trial.n_samples[2:]
    spans = timeline.spans(trial)
    assert {s.batch for s in spans} == {0, 1}
    assert timeline.window(trial, 40) == range(2)


def test_an_empty_trial_has_no_spans() -> None:
    trial = Trial(config=LoaderConfig(4), status="failed")
    assert timeline.spans(trial) == []
    assert timeline.window(trial, 40, max_s=2.0) == range(0)
    assert timeline.load_starts(trial) == []
    assert timeline.make_s(trial) == []
    assert timeline.transfer_s(trial) == []
    assert timeline.lane_names(trial) == [MAIN, "worker 0", "worker 1", "worker 2", "worker 3"]


def test_window_starts_at_the_first_batch_and_caps_batches_and_seconds() -> None:
    trial = fakes.trial(2, 0.1)  # first batch at 0.01 s, then one every 0.1 s
    assert timeline.window(trial, 5) == range(5)
    assert timeline.window(trial, 40, max_s=0.35) == range(4)
    assert timeline.window(trial, 40, max_s=0.0) == range(1)
    assert timeline.window(trial, 0) == range(0)


def test_a_window_keeps_the_loads_that_started_within_its_time() -> None:
    trial = two_workers()
    spans = timeline.spans(trial, range(1))  # batch 0 ends its step at 0.054
    assert {s.batch for s in spans if s.lane == MAIN} == {0}
    assert {s.batch for s in spans if s.kind == "load"} == {0, 1, 2, 3}  # all began by then
    early = timeline.spans(no_workers(), range(1))
    assert {s.batch for s in early} == {0}


def test_timeline_trial_is_the_best_configs_median_repeat() -> None:
    result = fakes.result(
        fakes.trial(2, 0.010, repeat=0),
        fakes.trial(2, 0.012, repeat=1),
        fakes.trial(2, 0.011, repeat=2),
        fakes.trial(0, 0.050),
        fakes.failed(4),
    )
    chosen = timeline.timeline_trial(result)
    assert chosen is not None and chosen.config.num_workers == 2 and chosen.repeat == 2
    assert timeline.timeline_trial(fakes.result(fakes.failed(2))) is None


def test_the_timeline_and_text_renderers_import_no_torch() -> None:
    code = (
        "import sys, loadertune.analysis.timeline, loadertune.report.trace, "
        "loadertune.report.mermaid; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- Chrome trace

REQUIRED = {
    "X": {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"},
    "M": {"name", "ph", "pid", "args"},
    "C": {"name", "ph", "ts", "pid", "args"},
}


def test_chrome_trace_follows_the_trace_event_format() -> None:
    trial = two_workers()
    trial.memory = [(0.0, 100 * 2**20), (0.05, 150 * 2**20), (5.0, 1)]
    doc = chrome_trace(fakes.result(trial))
    json.dumps(doc, allow_nan=False)
    assert doc["displayTimeUnit"] in ("ms", "ns")
    events = doc["traceEvents"]
    for event in events:
        assert REQUIRED[event["ph"]] <= event.keys()
        assert isinstance(event["pid"], int) and isinstance(event.get("tid", 0), int)
        for key in ("ts", "dur"):
            if key in event:
                assert isinstance(event[key], int | float) and event[key] >= 0
                assert math.isfinite(event[key])
    slices = [e for e in events if e["ph"] == "X"]
    wait0 = next(e for e in slices if e["name"] == "wait" and e["args"]["batch"] == 0)
    assert (wait0["ts"], wait0["dur"]) == pytest.approx((20_000, 31_000))  # microseconds
    assert wait0["args"]["samples"] == 8
    assert len([e for e in events if e["ph"] == "C"]) == 2  # the sample past the window is cut


def test_chrome_trace_names_every_lane() -> None:
    events = chrome_trace(fakes.result(two_workers()))["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(threads.values()) == ["main loop", "worker 0", "worker 1"]
    used = {e["tid"] for e in events if e["ph"] == "X"}
    assert used <= threads.keys()
    process = next(e for e in events if e["name"] == "process_name")
    assert "w=2" in process["args"]["name"]


def test_chrome_trace_caps_the_window_and_says_so() -> None:
    trial = fakes.trial(2, 0.01)
    doc = chrome_trace(fakes.result(trial), max_batches=5)
    main = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "main"]
    assert {e["args"]["batch"] for e in main} == set(range(5))
    assert "first 5 shown" in doc["otherData"]["window"]
    labels = next(e for e in doc["traceEvents"] if e["name"] == "process_labels")
    assert "of 20" in labels["args"]["labels"]


def test_chrome_trace_without_a_successful_trial_is_empty_but_valid() -> None:
    doc = chrome_trace(fakes.result(fakes.failed(2)))
    assert doc["traceEvents"] == []
    json.dumps(doc, allow_nan=False)


# -- Mermaid

TASK = re.compile(r"^    (?P<name>[^:#;]+) :(?P<tags>(?:\w+, )*)(?P<start>\d+), (?P<end>\d+)$")


def _tasks(text: str) -> list[re.Match[str]]:
    lines = text.splitlines()
    tasks = [TASK.match(line) for line in lines if " :" in line]
    assert all(tasks), [line for line in lines if " :" in line and not TASK.match(line)]
    return [t for t in tasks if t is not None]


def test_gantt_is_a_fenced_mermaid_block_with_millisecond_dates() -> None:
    text = gantt(fakes.result(fakes.trial(2, 0.05)), batches=4)
    lines = text.splitlines()
    assert lines[0] == "```mermaid" and lines[-1] == "```"
    assert "gantt" in lines and "    dateFormat x" in lines
    assert any(line.startswith("    axisFormat %") for line in lines)
    assert "section main loop" in text and "section worker 0" in text
    title = next(line for line in lines if line.strip().startswith("title "))
    assert "time in µs (drawn as ms)" in title and not re.search(r"[:#;]", title)  # < 1 s
    tasks = _tasks(text)
    assert all(int(t["end"]) > int(t["start"]) for t in tasks)
    waits = [t for t in tasks if t["name"].startswith("wait")]
    assert len(waits) == 4 and all("crit" in t["tags"] for t in waits)


def test_gantt_of_a_short_window_counts_microseconds_and_says_so() -> None:
    trial = no_workers()
    trial.ready_s[1] = trial.request_s[1]  # a zero-length wait
    text = gantt(fakes.result(trial))
    title = next(line for line in text.splitlines() if "title" in line)
    assert "µs" in title and "drawn as 1" in title
    tasks = {t["name"].strip(): t for t in _tasks(text)}
    assert (int(tasks["wait 1"]["start"]), int(tasks["wait 1"]["end"])) == (11_000, 11_001)
    assert (int(tasks["load 0"]["start"]), int(tasks["load 0"]["end"])) == (1_000, 5_800)


def test_gantt_task_names_never_carry_mermaid_separators() -> None:
    result = fakes.result(two_workers())
    result.workload = {**result.workload, "name": "data.py:rows #1; test"}
    text = gantt(result)
    assert "data.py rows 1 test" in text
    assert _tasks(text)
    assert gantt(fakes.result(fakes.failed(2))) == ""
