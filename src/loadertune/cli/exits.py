"""The command's exit codes and what each means, written once: the help epilog is made from
:data:`MEANINGS`."""

from __future__ import annotations

EXIT_OK = 0
EXIT_TRIAL_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

MEANINGS = {
    EXIT_OK: "success (check: every check passed)",
    EXIT_TRIAL_FAILED: "measured, but a trial failed (tune: nothing usable was found; "
    "it searches around failed configs and lists them; check: a check failed)",
    EXIT_USAGE: "bad usage or target",
    EXIT_INTERRUPTED: "interrupted (what was measured is kept and printed)",
}

HELP_WIDTH = 100  # the epilog's lines, as the source's: a terminal wraps longer ones anyway


def exit_codes_help(width: int = HELP_WIDTH) -> str:
    """``exit codes: 0 success; 1 ...``, wrapped at clause ends (after a ``;``) so that no
    short clause is split over two lines."""
    text = "exit codes: " + "; ".join(f"{code} {MEANINGS[code]}" for code in MEANINGS) + "."
    lines: list[str] = []
    for clause in text.replace("; ", ";\n").splitlines():
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
        else:
            lines.append(clause)
    return "\n".join(lines)
