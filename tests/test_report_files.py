"""report.md as text, and the report files end to end: --out, show, profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_run import run_cli
from fakes import classic_like
from loadertune.cli import EXIT_OK, EXIT_USAGE, main
from loadertune.report.markdown import report_markdown

IN_MEMORY = str(Path(__file__).parent / "in_memory.py")
FILES = {"result.json", "report.md", "timeline.json", "throughput.png", "timeline.png"}


def test_the_markdown_report_has_the_table_verdict_advice_and_timeline() -> None:
    probe = {"per_sample_s": 0.0006, "batched_s": 0.0002, "speedup": 3.0}
    text = report_markdown(classic_like({"batched_fetch": probe}))
    assert text.startswith("# loadertune: fake: batch 8, 20 batches per epoch\n")
    assert "|* w=0" in text and "|  w=2" in text and "|transfer!" in text
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## Results", "## Pick", "## Verdict", "## Advice", "## Timeline"]
    assert "More workers do not help: w=2" in text
    assert "1. Indexing sample by sample" in text and "**Fix:** Fetch whole batches" in text
    assert "```mermaid\n" in text and "\ngantt\n" in text
    assert "![timeline](timeline.png)" in text


def test_a_result_measured_on_ranks_says_so_in_the_report() -> None:
    result = classic_like()
    result.distributed = {
        "world_size": 2,
        "local_world_size": 2,
        "nodes": 1,
        "backend": "gloo",
        "cpus_per_local_rank": 1,
    }
    text = report_markdown(result, with_plots=False)
    assert "## Ranks" in text and "Measured on 2 ranks (1 node x 2 local, gloo)" in text
    assert "## Ranks" not in report_markdown(classic_like(), with_plots=False)


def test_without_plots_the_report_links_no_png() -> None:
    assert ".png" not in report_markdown(classic_like(), with_plots=False)


@pytest.mark.workers
def test_profile_writes_the_five_files_and_show_reproduces_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_cli(
        "profile",
        f"{IN_MEMORY}:loader",
        "--step",
        f"{IN_MEMORY}:train_step",
        "--repeats",
        "2",
        "--out",
        str(out),
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert {p.name for p in out.iterdir()} == FILES
    assert all((out / name).stat().st_size > 1000 for name in FILES - {"report.md"})
    doc = json.loads((out / "result.json").read_text())
    assert doc["verdict"]["sentence"] and doc["diagnosis"]["step_alone"]["samples_per_s"] > 0
    assert doc["verdict"]["sentence"] in (out / "report.md").read_text()
    trace = json.loads((out / "timeline.json").read_text())
    assert trace["traceEvents"]
    shown = run_cli("show", str(out / "result.json"))
    assert shown.returncode == EXIT_OK, shown.stderr
    assert _from(shown.stdout, "Verdict:") == _from(done.stdout, "Verdict:")


def _from(text: str, marker: str) -> str:
    return text[text.index(marker) :]


def test_show_refuses_a_file_that_is_not_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text(json.dumps({"schema": "something else"}))
    assert main(["show", str(bogus)]) == EXIT_USAGE
    assert main(["show", str(tmp_path / "missing.json")]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "not a loadertune result" in err[0] and "no such file" in err[1]


def test_an_out_path_that_is_a_file_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    assert main(["profile", f"{IN_MEMORY}:loader", "--out", str(taken)]) == EXIT_USAGE
    assert "is not a folder" in capsys.readouterr().err
