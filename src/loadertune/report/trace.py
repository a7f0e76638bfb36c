"""A trial's timeline as a Chrome trace (JSON Trace Event Format): open it in Perfetto
(ui.perfetto.dev) or chrome://tracing.

One process (the trial), one thread per lane: ``main loop`` (start, wait, step), then
``worker N`` (or ``main (loading)`` without workers) with a ``load`` slice per batch (``load +
worker start`` for each worker's first); memory as a counter. Spans from
:mod:`loadertune.analysis.timeline`.
Times are microseconds since ``iter(loader)``.
"""

from __future__ import annotations

from typing import Any

from loadertune.analysis import timeline
from loadertune.records.result import Result
from loadertune.records.trial import Trial

TRACE_MAX_BATCHES = 500  # a few seconds of a fast loader; enough to see start-up and rhythm
PID = 1
THREAD_NAMES = {timeline.MAIN: "main loop"}


def chrome_trace(
    result: Result, trial: Trial | None = None, max_batches: int = TRACE_MAX_BATCHES
) -> dict[str, Any]:
    """The trace of ``trial`` (default: :func:`timeline.timeline_trial`), first ``max_batches``
    batches, as a JSON-ready dict with ``traceEvents``, ``displayTimeUnit`` and ``otherData``.

    >>> json.dump(chrome_trace(result), open("trace.json", "w"))  # doctest: +SKIP
    """
    trial = trial if trial is not None else timeline.timeline_trial(result)
    if trial is None:
        return _document([], _about(result, None, "no successful trial to show"))
    batches = timeline.window(trial, max_batches)
    note = _window_note(trial, batches)
    tids = {lane: tid for tid, lane in enumerate(timeline.lane_names(trial))}
    events = _metadata(result, trial, tids, note)
    events += [_slice(span, tids[span.lane], trial) for span in timeline.spans(trial, batches)]
    events += _memory(trial, batches)
    return _document(events, _about(result, trial, note))


def _document(events: list[dict[str, Any]], about: dict[str, Any]) -> dict[str, Any]:
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": about}


def _about(result: Result, trial: Trial | None, note: str) -> dict[str, Any]:
    about: dict[str, Any] = {"tool": "loadertune", "workload": result.workload.get("name")}
    if trial is not None:
        about |= {"config": trial.config.label(), "repeat": trial.repeat, "status": trial.status}
    return about | {"window": note, "time": "microseconds since iter(loader)"}


def _window_note(trial: Trial, batches: range) -> str:
    if not batches:
        return "no batches"
    shown = f"batches 0-{batches[-1]} of {trial.batches} measured"
    return shown if len(batches) == trial.batches else f"{shown} (first {len(batches)} shown)"


def _metadata(
    result: Result, trial: Trial, tids: dict[str, int], note: str
) -> list[dict[str, Any]]:
    name = f"{result.workload.get('name') or 'loadertune'}: {trial.config.label()}"
    events = [
        _meta("process_name", None, {"name": f"{name} (repeat {trial.repeat})"}),
        _meta("process_labels", None, {"labels": note}),
    ]
    for lane, tid in tids.items():
        events.append(_meta("thread_name", tid, {"name": THREAD_NAMES.get(lane, lane)}))
        events.append(_meta("thread_sort_index", tid, {"sort_index": tid}))
    return events


def _meta(name: str, tid: int | None, args: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"name": name, "ph": "M", "pid": PID, "args": args}
    if tid is not None:
        event["tid"] = tid
    return event


def _slice(span: timeline.Span, tid: int, trial: Trial) -> dict[str, Any]:
    """An ``X`` (complete) event; named by kind so each kind keeps one colour."""
    args: dict[str, Any] = {"batch": span.batch, "samples": trial.n_samples[span.batch]}
    if span.kind == "load":
        args["worker"] = trial.worker_id[span.batch]
    if span.with_startup:
        args["note"] = "the worker's first batch: includes the worker's start-up"
    return {
        "name": "load + worker start" if span.with_startup else span.kind,
        "cat": "main" if span.lane == timeline.MAIN else "load",
        "ph": "X",
        "ts": _us(span.start_s),
        "dur": _us(max(span.duration_s, 0.0)),
        "pid": PID,
        "tid": tid,
        "args": args,
    }


def _memory(trial: Trial, batches: range) -> list[dict[str, Any]]:
    """Memory of the main process and its workers, a counter track in MiB."""
    if not batches:
        return []
    end_s = trial.step_end_s[batches[-1]]
    name = f"memory ({trial.memory_metric.upper()}, MiB)"
    return [
        {"name": name, "ph": "C", "ts": _us(t), "pid": PID, "args": {"MiB": round(b / 2**20, 1)}}
        for t, b in trial.memory
        if 0.0 <= t <= end_s
    ]


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)
