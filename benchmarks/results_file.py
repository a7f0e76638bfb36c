"""benchmarks/RESULTS.md: each script owns one "## " section and rewrites only that one."""

from __future__ import annotations

from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace (or append) the section that starts with ``heading``, keeping every other one."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        after = old.find("\n## ", start + len(heading))
        rest = old[after + 1 :] if after >= 0 else ""
        new = old[:start] + text + ("\n" + rest if rest else "")
    path.write_text(new)
