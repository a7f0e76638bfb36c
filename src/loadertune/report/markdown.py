"""report.md: the table, verdict, advice, pick and a timeline, in Markdown that renders on any
Git host (the timeline as a Mermaid gantt block, the plots as linked PNGs)."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console

from loadertune.analysis.advice import findings
from loadertune.analysis.explanation import result_verdict
from loadertune.records import units
from loadertune.records.result import Result
from loadertune.report import mermaid
from loadertune.report.headline import headline_lines
from loadertune.report.ranks import rank_lines
from loadertune.report.table import caption, results_table, title
from loadertune.report.tuning import tuning_lines
from loadertune.report.verdict import warning_lines

WIDTH = 160  # wide enough that no table cell wraps; Markdown tables ignore the width anyway
GANTT_BATCHES = 8  # a Mermaid gantt stays legible to about this many batches (labels overlap)


def report_markdown(result: Result, with_plots: bool = True) -> str:
    """The whole report; ``with_plots`` links throughput.png and timeline.png beside it."""
    parts = [f"# loadertune: {title(result)}", _facts(result), "## Results", _table(result)]
    legend = caption(result)
    if legend:
        parts.append(f"_{legend}_")
    parts += _failures(result)
    parts += ["## Pick", _lines(tuning_lines(result) or headline_lines(result))]
    ranks = rank_lines(result)
    if ranks:
        parts += ["## Ranks", _lines(ranks)]
    parts += _verdict(result)
    parts += _advice(result)
    warnings = warning_lines(result)
    if warnings:
        parts += ["## Warnings", _lines(warnings)]
    parts += _timeline(result, with_plots)
    return "\n\n".join(p for p in parts if p) + "\n"


def _facts(result: Result) -> str:
    machine = result.machine
    cpus = machine.get("cpus") or {}
    command = " ".join(result.command or [])
    facts = [
        f"- command: `{command}`" if command else "",
        f"- measured: {result.created}" + (" (interrupted)" if result.interrupted else ""),
        f"- machine: {cpus.get('usable')} usable CPUs ({cpus.get('how', '')}), "
        f"{units.size(machine.get('total_memory_bytes'))} memory, "
        f"torch {machine.get('torch_version')}, Python {machine.get('python_version')}",
    ]
    devices = sorted({t.device for t in result.trials if t.device is not None})
    facts += [f"- step on {', '.join(devices)}: clocks synchronized" if devices else ""]
    return "\n".join(f for f in facts if f)


def _table(result: Result) -> str:
    table = results_table(result)
    table.box = box.MARKDOWN
    table.show_edge = True
    buffer = io.StringIO()
    Console(file=buffer, width=WIDTH, color_system=None, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines() if line.strip())


def _failures(result: Result) -> list[str]:
    lines = [
        f"- failed ({t.config.label()}, repeat {t.repeat}): {t.error}" for t in result.failed_trials
    ]
    return ["## Failures", "\n".join(lines)] if lines else []


def _verdict(result: Result) -> list[str]:
    verdict = result_verdict(result)
    if verdict is None:
        return []
    return ["## Verdict", verdict["sentence"]]


def _advice(result: Result) -> list[str]:
    items = [f"1. {f['finding']}\n   **Fix:** {f['fix']}" for f in findings(result)]
    return ["## Advice", "\n".join(items)] if items else []


def _timeline(result: Result, with_plots: bool) -> list[str]:
    parts = ["## Timeline"]
    gantt = mermaid.gantt(result, batches=GANTT_BATCHES)
    if gantt:
        parts.append(gantt)
    if with_plots:
        parts.append("![timeline](timeline.png)\n\n![throughput](throughput.png)")
    parts.append(
        "`timeline.json` holds the trace of the first batches: open it in "
        "https://ui.perfetto.dev or chrome://tracing."
    )
    return parts if len(parts) > 1 else []


def _lines(lines: list[str]) -> str:
    return "\n".join(f"- {line.strip()}" for line in lines)
