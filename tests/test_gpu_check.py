"""benchmarks/gpu_check.py, ready to run once on a GPU: its profiler arithmetic, its section, and
a smoke run on the CPU through every code path but the CUDA calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gpu_check
import gpu_report
from gpu_trace import GPU_ACTIVITIES, _ann, _op, step_windows, trace_view, union_length

TINY = gpu_check.Plan((0,), 1, 1.0, (0,), 64, 60.0, conv_side=8)


def test_a_kernel_belongs_to_the_step_that_launched_it_not_the_one_it_runs_in() -> None:
    """A GPU backed up: step 1's kernel runs while the CPU is in step 2 already."""
    events = [
        _ann(0, 10),
        _ann(10, 20),
        _op(1, 2, "cuda_runtime", correlation=7),  # launched in step 1 ...
        _op(12, 18, "kernel", correlation=7),  # ... runs during step 2's CPU span
        _op(11, 12, "cuda_runtime", correlation=8),
        _op(18, 25, "kernel", correlation=8),
    ]
    windows = step_windows(events, GPU_ACTIVITIES)
    assert [(w.start, w.end) for w in windows] == [(12, 18), (18, 25)]
    view = trace_view(events, GPU_ACTIVITIES)
    assert view["between_steps_idle"] == 0.0 and view["kernel_idle"] == 0.0


def test_idle_between_steps_and_without_kernels_are_told_apart() -> None:
    events = [_ann(0, 10), _ann(20, 30), _op(1, 2), _op(8, 9), _op(21, 22)]
    view = trace_view(events, ("cpu_op",))
    span = 22 - 1
    assert view["between_steps_idle"] == pytest.approx((21 - 9) / span)
    assert view["kernel_idle"] == pytest.approx(1 - 3 / span)  # inside step 1 as well
    assert union_length([_span(0, 5), _span(3, 8), _span(10, 11)]) == 9


def test_fewer_than_two_steps_give_no_figure() -> None:
    view = trace_view([_ann(0, 10), _op(1, 2)], ("cpu_op",))
    assert view["steps"] == 1 and view["between_steps_idle"] is None


def test_pin_is_judged_against_pin_off_at_the_same_workers_beyond_the_noise() -> None:
    measured = {
        "w=2": {"workers": 2, "pin": False, "epoch_s": 1.0},
        "w=2 pin": {"workers": 2, "pin": True, "epoch_s": 0.9},
        "w=0": {"workers": 0, "pin": False, "epoch_s": 2.0},
    }
    assert gpu_report.pin_wins(measured, 2, 0.03) is True
    assert gpu_report.pin_wins(measured, 2, 0.2) is False
    assert gpu_report.pin_wins(measured, 0, 0.03) is None


def test_the_smoke_run_goes_through_every_check_and_writes_its_files(tmp_path: Path) -> None:
    assert gpu_check.run(tmp_path, gpu_check.Dev("cpu"), TINY, ["--device", "cpu"]) == 0
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["errors"] == [] and doc["skipped"] == []
    assert set(doc["epochs"]) == set(doc["picks"]) == set(doc["idle"]) == {"classic", "convnet"}
    row = doc["epochs"]["classic"]["w=0"]
    assert len(row["hand_s"]) == len(row["tool"]) == 1 and row["tool"][0]["epoch_s"] > 0
    assert doc["epochs"]["classic"]["w=0 pin"]["tool"][0]["error"] is None
    profiled = doc["idle"]["classic"]["w=0"]
    assert profiled["profiler"]["steps"] == profiled["batches"] == 16  # 1000 rows / 64
    section = (tmp_path / "gpu_check.md").read_text()
    assert section.startswith(gpu_report.SECTION) and "| classic | w=0 |" in section
    assert (tmp_path / "gpu_check.log").read_text().count("\n") >= 5


def test_a_section_made_earlier_is_merged_into_results_alone(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    made = tmp_path / "gpu_check.md"
    made.write_text(f"{gpu_report.SECTION}\n\nfigures\n")
    args = ["--write-results", str(made), "--results", str(results)]
    assert gpu_check.main(args) == 0
    text = results.read_text()
    assert "## Other\n\nkept" in text and f"{gpu_report.SECTION}\n\nfigures" in text
    made.write_text("## Something else\n")
    assert gpu_check.main(args) == 2


def test_without_cuda_it_says_so_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main(["--out", "/nonexistent/never-written"]) == 0
    assert capsys.readouterr().out == "no CUDA device: nothing to check\n"


def _span(start: float, end: float) -> object:
    from gpu_trace import Span

    return Span(start, end)
