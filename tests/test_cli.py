"""The command line, end to end: exit codes, one-line errors, the table and the JSON."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cli_run import run_cli
from loadertune.cli import main

DATASETS = str(Path(__file__).parent / "sample_data.py")


@pytest.mark.workers
def test_bench_writes_a_table_and_a_result_document(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = run_cli(
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
    done = run_cli("bench", "--help")
    assert done.returncode == 0
    assert "130 interrupted" in done.stdout and "path/to/file.py:name" in done.stdout


@pytest.mark.workers
def test_demo_finds_a_pick_and_says_it(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    done = run_cli("demo", "--json", str(out))
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


def _children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _finished_trials(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["trials"])
    except (OSError, ValueError):
        return 0


@pytest.mark.workers
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_trial_exits_130_keeping_the_trials_and_no_process(
    tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "r.json"
    args = ["bench", f"{DATASETS}:sleepy", "--workers", "0,2", "--repeats", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadertune", *args, "--batch-size", "8", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        workers = _wait_for_workers(proc, out)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a no-op if it exited
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "w=0" in stdout  # the table of what was measured
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True
    assert doc["trials"][0]["status"] == "ok"  # the finished trial is kept whole
    assert doc["trials"][-1]["error_kind"] == "interrupted", doc["trials"][-1]
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temp file left


def _wait_for_workers(proc: subprocess.Popen[str], out: Path) -> list[psutil.Process]:
    """Wait until the first trial is saved and the second one's workers run; return them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children_of(proc.pid)
        if _finished_trials(out) >= 1 and len(children) >= 2:
            return children
        time.sleep(0.05)
    raise AssertionError(f"no trial with workers began (exit code {proc.poll()})")


@pytest.mark.workers
def test_bench_max_memory_stops_a_hoarding_config_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    out = tmp_path / "r.json"
    from loadertune.engine.memory import tree_memory_bytes

    limit_mib = tree_memory_bytes()[0] // 2**20 + 150
    args = ["bench", f"{DATASETS}:hoards", "--workers", "0,2", "--repeats", "1"]
    code = main([*args, "--batch-size", "4", "--max-memory", f"{limit_mib}M", "--json", str(out)])
    assert code == 1
    text = capsys.readouterr().out
    assert "failed (w=2, repeat 0): stopped: memory " in text and f"{limit_mib} MiB limit" in text
    doc = json.loads(out.read_text())
    kinds = {t["config"]["num_workers"]: t["error_kind"] for t in doc["trials"]}
    assert kinds == {0: None, 2: "memory"}  # the main process keeps nothing: w=0 runs whole
    assert doc["settings"]["max_memory_bytes"] == limit_mib * 2**20


def test_bench_and_tune_refuse_a_bad_max_memory(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("bench", "tune"):
        assert _exit_code([command, f"{DATASETS}:tiny", "--max-memory", "lots"]) == 2
        assert "expected a size like 8G or 512M" in capsys.readouterr().err


@pytest.mark.workers
def test_a_killed_worker_fails_its_trial_with_the_cause_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    args = ["bench", f"{DATASETS}:killed", "--workers", "2", "--repeats", "1"]
    assert main([*args, "--batch-size", "1"]) == 1
    text = capsys.readouterr().out
    assert "was killed by SIGKILL" in text and "out-of-memory killer" in text


def test_a_step_that_raises_fails_its_trial_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    args = ["bench", f"{DATASETS}:tiny", "--step", f"{DATASETS}:failing_step", "--workers", "0"]
    assert main([*args, "--repeats", "1"]) == 1
    assert "the step raised RuntimeError: loss is nan (batch 0)" in capsys.readouterr().out


def test_a_batch_larger_than_the_dataset_with_drop_last_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _exit_code(["bench", f"{DATASETS}:loader", "--batch-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "no batch: batch size 1000 with drop_last=True leaves nothing from 100 samples" in err


def test_a_batch_larger_than_the_dataset_without_drop_last_is_one_batch(
    tmp_path: Path,
) -> None:
    out = tmp_path / "r.json"
    args = ["bench", f"{DATASETS}:tiny", "--batch-size", "1000", "--workers", "0"]
    assert main([*args, "--repeats", "1", "--json", str(out)]) == 0
    trial = json.loads(out.read_text())["trials"][0]
    assert trial["raw"]["n_samples"] == [256] and trial["complete"] is True


def test_the_strategies_the_help_names_are_the_ones_tune_knows() -> None:
    from loadertune.cli.parser import _STRATEGIES
    from loadertune.tuning.tune import STRATEGIES

    assert set(_STRATEGIES) == set(STRATEGIES)


def test_device_cuda_without_a_gpu_is_a_usage_error_and_cpu_measures_as_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    args = ["bench", f"{DATASETS}:tiny", "--step", f"{DATASETS}:sum_step", "--workers", "0"]
    assert main([*args, "--repeats", "1", "--device", "cpu"]) == 0
    if torch.cuda.is_available():
        return
    capsys.readouterr()
    assert main([*args, "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err
