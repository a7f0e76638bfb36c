"""``loadertune check`` end to end (exit codes, JUnit, JSON, annotations) and the pytest helper.

The regression rule is driven by baselines built by hand whose epochs are far slower or far
faster than anything measured here, so no outcome rests on this machine's timing; the wait rule
by data that sleeps per sample (the step can only wait) or a 10 ms step on in-memory rows (it
never waits).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

import fakes
from loadertune import LoaderConfig, Result
from loadertune.analysis.document import save
from loadertune.cli import main
from loadertune.engine.trials import Interrupted
from loadertune.testing import assert_loader_keeps_up
from sample_data import Rows, slow_step, sum_step

DATASETS = str(Path(__file__).parent / "sample_data.py")
OLD = Path(__file__).parent / "data" / "result_before_reshape.json"


def baseline_file(tmp_path: Path, batch_s: float, workers: int = 0) -> str:
    """A baseline of 20-batch epochs, each batch ``batch_s``: 100 s an epoch at 5.0, about 1 ms
    at 1e-5 (startup included)."""
    trials = [fakes.trial(workers, batch_s, startup_s=batch_s, repeat=r) for r in range(3)]
    path = tmp_path / f"baseline_{batch_s}.json"
    save(fakes.result(*trials, repeats=3), path)
    return str(path)


def check(*args: str) -> list[str]:
    return ["check", *args, "--repeats", "2"]


def test_check_passes_against_a_slower_baseline_and_writes_junit_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, out = tmp_path / "junit.xml", tmp_path / "check.json"
    baseline = baseline_file(tmp_path, 5.0)
    args = [f"{DATASETS}:tiny", "--baseline", baseline, "--junit", str(junit), "--json", str(out)]
    assert main(check(*args)) == 0
    shown = capsys.readouterr()
    assert "PASS epoch vs baseline: Keeps up with the baseline" in shown.out
    assert "loadertune check passed: 1 check" in shown.out
    assert "warning: the baseline was measured on another machine (torch: x there" in shown.err
    (case,) = ET.parse(junit).getroot().iter("testcase")  # noqa: S314 - ours
    assert case.get("name") == "epoch vs baseline" and case.find("failure") is None
    doc = json.loads(out.read_text())
    assert doc["check"]["passed"] is True and doc["check"]["baseline"] == baseline
    assert doc["check"]["others_cpus"] is None or doc["check"]["others_cpus"] >= 0
    assert doc["workload"]["batch_size"] == 8  # a bare Dataset batched as the baseline was
    assert Result.load(out).check == doc["check"]  # a check's result is a baseline too


def test_check_fails_against_a_faster_baseline_with_exit_1_and_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    junit = tmp_path / "junit.xml"
    baseline = baseline_file(tmp_path, 1e-5)
    assert main(check(f"{DATASETS}:slow", "--baseline", baseline, "--junit", str(junit))) == 1
    shown = capsys.readouterr().out
    assert "FAIL epoch vs baseline: Slower than the baseline" in shown
    assert "loadertune check failed: 1 of 1 check" in shown
    errors = [line for line in shown.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=loadertune check%3A epoch vs baseline::Slower")
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")  # noqa: S314
    assert failure is not None and failure.text is not None
    assert failure.text.startswith("Slower than the baseline: an epoch at w=0 takes")


def test_a_baseline_written_by_an_older_loadertune_is_a_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # about 3 ms an epoch there; 64 samples sleeping 2 ms each here
    assert main(check(f"{DATASETS}:slow", "--baseline", str(OLD))) == 1
    shown = capsys.readouterr()
    assert "takes" in shown.out and "(median of 2 runs" in shown.out
    assert "against the baseline's 2.96 ms at w=0" in shown.out
    assert "another workload (samples: 256 there, 64 here" in shown.err


def test_the_wait_rule_fails_a_starved_step_and_passes_a_busy_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    starved = check(f"{DATASETS}:slow", "--step", f"{DATASETS}:sum_step")
    assert main(starved) == 1
    assert "FAIL data wait: The step waits for data" in capsys.readouterr().out
    busy = check(f"{DATASETS}:tiny", "--step", f"{DATASETS}:slow_step", "--max-wait", "20%")
    assert main(busy) == 0
    assert "PASS data wait" in capsys.readouterr().out


@pytest.mark.workers
def test_a_dataset_is_measured_with_the_knobs_given(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    baseline = baseline_file(tmp_path, 5.0, workers=2)
    assert main(check(f"{DATASETS}:tiny", "--baseline", baseline, "--json", str(out))) == 0
    assert {t["config"]["num_workers"] for t in json.loads(out.read_text())["trials"]} == {2}
    args = check(f"{DATASETS}:tiny", "--baseline", baseline, "--workers", "0", "--json", str(out))
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert {t["config"]["num_workers"] for t in doc["trials"]} == {0}
    assert "The baseline did not measure w=0" in doc["check"]["checks"][0]["paragraph"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([f"{DATASETS}:tiny"], "nothing to check: give --step"),
        ([f"{DATASETS}:tiny", "--max-wait", "20%", "--baseline", str(OLD)], "--max-wait needs"),
        ([f"{DATASETS}:tiny", "--step", f"{DATASETS}:sum_step", "--max-wait", "20"], "20%"),
        ([f"{DATASETS}:tiny", "--tolerance", "ten"], "expected a share like 20% or 0.2"),
        (  # a wait past all of the time could never fail the gate
            [f"{DATASETS}:tiny", "--step", f"{DATASETS}:sum_step", "--max-wait", "150%"],
            "more than all of the time",
        ),
        ([f"{DATASETS}:tiny", "--baseline", "missing.json"], "--baseline missing.json: no such"),
        ([f"{DATASETS}:tiny", "--baseline", DATASETS], "not a loadertune result"),
        ([f"{DATASETS}:nope", "--baseline", str(OLD)], "nope"),
    ],
)
def test_bad_usage_or_target_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        raise SystemExit(main(["check", *args]))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_junit_path_that_cannot_be_written_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(check(f"{DATASETS}:tiny", "--baseline", str(OLD), "--junit", str(tmp_path))) == 2
    assert "--junit" in capsys.readouterr().err


def test_an_interrupted_check_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import loadertune.engine.bench as engine_bench

    def interrupted(*args: object, **kwargs: object) -> Result:
        raise Interrupted(fakes.result())

    monkeypatch.setattr(engine_bench, "bench", interrupted)
    junit = tmp_path / "junit.xml"
    assert main(check(f"{DATASETS}:tiny", "--baseline", str(OLD), "--junit", str(junit))) == 130
    assert not junit.exists()


def test_the_pytest_helper_raises_the_same_paragraph() -> None:
    starved = DataLoader(Rows(64, cost_s=0.002), batch_size=8)
    with pytest.raises(AssertionError, match=r"^data wait: The step waits for data \d+% of"):
        assert_loader_keeps_up(starved, sum_step, max_wait=0.2, repeats=2)
    result = assert_loader_keeps_up(DataLoader(Rows(64), batch_size=8), slow_step, repeats=2)
    assert result.best is not None and len(result.trials) == 2


def test_the_pytest_helper_compares_with_a_baseline(tmp_path: Path) -> None:
    fast = baseline_file(tmp_path, 1e-5)
    with pytest.raises(AssertionError, match=r"^epoch vs baseline: Slower than the baseline"):
        assert_loader_keeps_up(Rows(64, cost_s=0.002), None, None, baseline=fast, repeats=2)
    with pytest.raises(ValueError, match="max_wait needs a step"):
        assert_loader_keeps_up(Rows(64), None)


def test_an_online_loaders_saved_result_is_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import loadertune

    loader = loadertune.DataLoader(Rows(64), batch_size=8, epochs=3, cache=False)
    for _ in range(3):
        for _batch in loader:
            pass
    saved = tmp_path / "online.json"
    loader.save_tuning(saved)
    # the epochs differ by far more than the gate allows: slow sleeps 2 ms a sample
    assert main(check(f"{DATASETS}:slow", "--baseline", str(saved))) == 1
    shown = capsys.readouterr().out
    assert "at w=0 (epochs timed inside an online loader's job)" in shown
    assert "FAIL epoch vs baseline" in shown


def test_a_searchs_pick_is_the_baseline_for_a_config_it_did_not_measure_again() -> None:
    from loadertune.analysis.gate import gate

    baseline = fakes.result(fakes.trial(0, 0.010), fakes.trial(4, 0.010), fakes.trial(8, 0.001))
    baseline.pick, baseline.tuning = LoaderConfig(4), {"strategy": "adaptive"}
    measured = fakes.result(fakes.trial(2, 0.010))
    (check,) = gate(measured, baseline, max_wait=None)
    assert check.figures["baseline_config"] == "w=4" and check.passed


def test_show_renders_a_saved_checks_outcomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "check.json"
    baseline = baseline_file(tmp_path, 1e-5)
    assert main(check(f"{DATASETS}:slow", "--baseline", baseline, "--json", str(out))) == 1
    checked = capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    (fail,) = [line for line in checked.splitlines() if line.startswith("FAIL ")]
    assert fail in shown.splitlines() and "loadertune check failed: 1 of 1 check" in shown
    assert "Warning (baseline): the baseline was measured on another machine" in shown
