"""``--out DIR``: the five report files, written from a result (nothing is measured here)."""

from __future__ import annotations

import json
from pathlib import Path

from loadertune.analysis.document import save, write_atomic
from loadertune.records.result import Result
from loadertune.report.markdown import report_markdown
from loadertune.report.trace import chrome_trace


def write_report(result: Result, folder: Path) -> tuple[list[Path], str | None]:
    """Write result.json, report.md, timeline.json, throughput.png and timeline.png into
    ``folder``. Returns the paths written and, when matplotlib is missing, why the PNGs were
    skipped (with the install command)."""
    from loadertune.report import plots

    folder.mkdir(parents=True, exist_ok=True)
    save(result, folder / "result.json")
    write_atomic(folder / "timeline.json", json.dumps(chrome_trace(result), allow_nan=False))
    written = [folder / "result.json", folder / "timeline.json"]
    skipped = None
    try:
        written.append(plots.throughput_png(result, folder / "throughput.png"))
        written.append(plots.timeline_png(result, folder / "timeline.png"))
    except plots.PlotUnavailableError as exc:
        skipped = f"throughput.png and timeline.png: {exc}"
    report = folder / "report.md"
    write_atomic(report, report_markdown(result, with_plots=skipped is None))
    return [*written, report], skipped
