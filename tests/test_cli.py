"""The command line, end to end: exit codes, one-line errors, the table and the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadertune.cli import main

DATASETS = str(Path(__file__).parent / "datasets.py")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadertune", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.workers
def test_bench_writes_a_table_and_a_result_document(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = _run(
        "bench",
        f"{DATASETS}:tiny",
        "--step",
        f"{DATASETS}:sum_step",
        "--workers",
        "0,1",
        "--repeats",
        "2",
        "--batch-size",
        "32",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "w=0" in done.stdout and "w=1" in done.stdout and "Fastest here" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "loadertune.result" and doc["version"] == 1
    assert doc["machine"]["cpus"]["usable"] >= 1 and doc["machine"]["torch_version"]
    assert doc["workload"]["batch_size"] == 32 and doc["workload"]["epoch_batches"] == 8
    assert len(doc["trials"]) == 4
    trial = doc["trials"][0]
    assert trial["status"] == "ok" and trial["error"] is None and trial["epoch_s"] > 0
    assert len(trial["raw"]["ready_s"]) == 8
    kwargs = doc["best"]["loader_kwargs"]
    assert kwargs["batch_size"] == 32 and kwargs["shuffle"] is True
    assert kwargs["num_workers"] in (0, 1)
    assert doc["trials"][0]["config"]["num_workers"] in (0, 1)


def test_a_failing_dataset_fails_its_trials_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code = main(
        ["bench", f"{DATASETS}:bad", "--workers", "0", "--repeats", "1", "--json", str(out)]
    )
    assert code == 1
    text = capsys.readouterr().out
    assert "ValueError: corrupt record 7" in text and "index 7" in text
    assert json.loads(out.read_text())["trials"][0]["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "missing.py:x"], "missing.py"),
        (["bench", "no_such_module_here:x"], "no module named 'no_such_module_here'"),
        (["bench", f"{DATASETS}:nope"], "has no attribute 'nope'"),
        (["bench", f"{DATASETS}:not_data"], "not a Dataset or DataLoader"),
        (["bench", f"{DATASETS}:tiny", "--workers", "two"], "expected whole numbers"),
        (["bench", f"{DATASETS}:tiny", "--batch-size", "0"], "must be at least 1"),
        (["bench", f"{DATASETS}:tiny", "--batch-size", "-3"], "must be at least 1"),
        (
            ["bench", f"{DATASETS}:tiny", "--step", f"{DATASETS}:tiny"],
            "not a function of one batch",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _exit_code(args: list[str]) -> int | str | None:
    """``main``'s return value, or the code argparse exits with."""
    try:
        return main(args)
    except SystemExit as exit_info:
        return exit_info.code


def test_a_dataloader_target_keeps_its_batch_size(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["bench", f"{DATASETS}:loader", "--workers", "0", "--repeats", "1"]) == 0
    assert "batch 10, 10 batches per epoch" in capsys.readouterr().out


def test_help_lists_the_exit_codes() -> None:
    done = _run("bench", "--help")
    assert done.returncode == 0
    assert "130 interrupted" in done.stdout and "path/to/file.py:name" in done.stdout


@pytest.mark.workers
def test_demo_finds_a_pick_and_says_it(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    done = _run("demo", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "Fastest here:" in done.stdout
    doc = json.loads(out.read_text())
    assert doc["workload"]["name"] == "classic example" and doc["best"] is not None


def test_a_json_path_that_cannot_be_written_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(["bench", f"{DATASETS}:tiny", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and len(err.strip().splitlines()) == 1
    assert _exit_code(["bench", f"{DATASETS}:tiny", "--json", "/dev/null/x.json"]) == 2
    assert "cannot create its folder" in capsys.readouterr().err


@pytest.mark.workers
def test_a_dataloader_target_keeps_its_start_method(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["bench", f"{DATASETS}:spawn_loader", "--workers", "0,1", "--repeats", "1"]
    assert main([*args, "--json", str(out)]) == 0
    configs = [t["config"] for t in json.loads(out.read_text())["trials"]]
    assert {"num_workers": 1, "multiprocessing_context": "spawn"}.items() <= configs[1].items()


def test_a_stream_is_measured_over_its_batch_budget(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert (
        main(["bench", f"{DATASETS}:stream", "--workers", "0", "--repeats", "1", "--batches", "20"])
        == 0
    )
    out = capsys.readouterr().out
    assert "20 batches per run" in out and "per 20 batches" in out
    assert "~" not in out.split("config")[1].splitlines()[2]  # measured whole, not estimated


def test_an_empty_dataset_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["bench", f"{DATASETS}:empty"]) == 2
    assert "the dataset is empty" in capsys.readouterr().err
