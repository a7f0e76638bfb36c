"""benchmarks/RESULTS.md: each script owns one "## " section and rewrites only that one."""

from __future__ import annotations

from datetime import datetime, timezone
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


def provenance(script: str, argv: list[str]) -> str:
    """The command that made a section, when, and the machine facts, as one Markdown line."""
    from loadertune.engine.machine import machine_facts

    facts = machine_facts()
    return (
        f"Command: `python benchmarks/{' '.join([script, *argv])}` "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC). Machine: {facts.cpus.usable} "
        f"usable CPUs ({facts.cpus.how}), torch {facts.torch_version}."
    )


def finish(section: str, text: str, quick: bool) -> int:
    """Print the section; a full run also rewrites it in RESULTS.md."""
    print(text)
    if not quick:
        write_section(RESULTS_PATH, section, text)
    return 0
