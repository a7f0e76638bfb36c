"""Running ``python -m loadertune`` as a user would, for the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command's exit code, stdout and stderr (text); five minutes at most."""
    return subprocess.run(
        [sys.executable, "-m", "loadertune", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
