"""A short window of a trial's timeline as a Mermaid ``gantt`` block, for Markdown reports.

Mermaid counts time in whole milliseconds (``dateFormat x``: epoch milliseconds). In a window of
less than a second, batches a millisecond apart would round onto each other (and compact mode
then stacks them on extra rows), so such a window is drawn in microseconds instead:
every number on the axis is then a microsecond, and the title says so. A span shorter than one
unit is drawn one unit long, and the title says that too.
"""

from __future__ import annotations

from loadertune.analysis import timeline
from loadertune.records.result import Result
from loadertune.records.trial import Trial

MIN_UNITS = 1000  # fewer whole units across the window and rounding moves bars onto each other
# Mermaid's task tags pick the colours: crit (red) makes the waits stand out
TAGS = {"start": "done, ", "wait": "crit, ", "step": "", "load": "active, "}
SECTION_NAMES = {timeline.MAIN: "main loop"}
_FORBIDDEN = str.maketrans({":": " ", "#": " ", ";": " "})  # they end or break a task name


def gantt(result: Result, batches: int = 12, trial: Trial | None = None) -> str:
    """A fenced ```` ```mermaid ```` gantt of the first ``batches`` batches of ``trial``
    (default: :func:`timeline.timeline_trial`): sections ``main loop`` and ``worker N``; waits
    tagged ``crit``. Empty string when there is nothing to draw.

    >>> print(gantt(result))  # doctest: +SKIP
    ```mermaid
    gantt
        title demo w=0, batches 0-11 of 16, time in ms since iter(loader)
    ...
    """
    trial = trial if trial is not None else timeline.timeline_trial(result)
    if trial is None:
        return ""
    shown = timeline.window(trial, batches)
    spans = timeline.spans(trial, shown)
    if not spans:
        return ""
    unit_s = _unit_s(max(s.end_s for s in spans))
    lines = ["```mermaid", "%%{init: {'gantt': {'displayMode': 'compact'}}}%%", "gantt"]
    lines += [f"    {line}" for line in _header(result, trial, shown, unit_s, spans)]
    lines += [f"    {line}" for line in _tasks(spans, unit_s)]
    return "\n".join([*lines, "```"])


def _unit_s(end_s: float) -> float:
    """One Mermaid "millisecond": a real millisecond, or a microsecond for a short window."""
    return 1e-3 if end_s / 1e-3 >= MIN_UNITS else 1e-6


def _header(
    result: Result, trial: Trial, shown: range, unit_s: float, spans: list[timeline.Span]
) -> list[str]:
    unit = "ms" if unit_s == 1e-3 else "µs (drawn as ms)"
    name = result.workload.get("name") or "loadertune"
    title = (
        f"{name} {trial.config.label()}, batches 0-{shown[-1]} of {trial.batches}, "
        f"time in {unit} since iter(loader)"
    )
    if any(_units(s.end_s, unit_s) == _units(s.start_s, unit_s) for s in spans):
        title += ", spans under 1 unit drawn as 1"
    return [
        f"title {_clean(title)}",
        "dateFormat x",
        "axisFormat %Q",  # whole milliseconds since the epoch: our units since iter(loader)
        "todayMarker off",
    ]


def _tasks(spans: list[timeline.Span], unit_s: float) -> list[str]:
    lines: list[str] = []
    section = None
    for span in spans:
        if span.lane != section:
            section = span.lane
            lines.append(f"section {SECTION_NAMES.get(section, section)}")
        start = _units(span.start_s, unit_s)
        end = max(_units(span.end_s, unit_s), start + 1)
        lines.append(f"{_task_name(span)} :{TAGS[span.kind]}{start}, {end}")
    return lines


def _task_name(span: timeline.Span) -> str:
    if span.kind == "start":
        return "start iter(loader)"
    if span.with_startup:
        return f"load {span.batch} with worker start"
    return f"{span.kind} {span.batch}"


def _units(seconds: float, unit_s: float) -> int:
    return round(seconds / unit_s)


def _clean(text: str) -> str:
    return " ".join(text.translate(_FORBIDDEN).split())
