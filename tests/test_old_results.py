"""A result.json written by an earlier loadertune (before the engine, analysis and records were
split, commit 3d32fc7) still loads, and ``show`` renders it exactly as that version did."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_run import run_cli
from loadertune import Result
from loadertune.analysis.document import document

DATA = Path(__file__).parent / "data"
OLD = DATA / "result_before_reshape.json"


def test_show_renders_an_old_result_as_the_old_version_did(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    shown = run_cli("show", str(OLD))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (DATA / "show_before_reshape.txt").read_text()


def test_an_old_result_loads_with_its_verdict_and_the_same_document() -> None:
    import json

    old = json.loads(OLD.read_text())
    result = Result.load(OLD)
    assert result.verdict == old["verdict"] and result.advice == old["advice"]
    again = document(result)
    for key in ("best", "verdict", "advice", "summary", "trials", "workload", "settings"):
        assert again[key] == old[key], key
