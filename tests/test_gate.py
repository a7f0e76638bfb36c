"""The rules of ``loadertune check`` on results built by hand: pass and fail for the data-wait
and the regression rule, the noise that widens the tolerance, a baseline of another machine or
an older loadertune, and what CI reads (JUnit XML, GitHub workflow commands)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import fakes
from loadertune import LoaderConfig, Result
from loadertune.analysis.gate import REGRESSION, RUNS, WAIT, Check, baseline_warnings, gate
from loadertune.report.ci import junit_xml, workflow_commands

OLD = Path(__file__).parent / "data" / "result_before_reshape.json"


def repeated(workers: int, *batch_s: float) -> Result:
    """One config run once per ``batch_s``: epochs of 20 batches, the step waiting half the
    time (see ``fakes.trial``)."""
    trials = [fakes.trial(workers, b, repeat=r) for r, b in enumerate(batch_s)]
    return fakes.result(*trials, repeats=len(batch_s))


def test_the_wait_rule_passes_within_the_limit_and_fails_past_it() -> None:
    measured = repeated(0, 0.010, 0.011, 0.010)
    (ok,) = gate(measured, max_wait=0.6)
    (bad,) = gate(measured, max_wait=0.2)
    assert ok.name == bad.name == WAIT
    assert ok.passed and not bad.passed
    assert "waits for data 50% of the time at w=0" in bad.paragraph
    assert "more than the 20% allowed" in bad.paragraph
    assert "Input-bound (highly)" in bad.paragraph  # the verdict travels with the figures
    assert "within the 60% allowed" in ok.paragraph
    assert bad.figures["wait_fraction"]["n"] == 3
    (close,) = gate(measured, max_wait=0.495)  # not "50%, more than the 50% allowed"
    assert not close.passed and "50.0% of the time" in close.paragraph
    assert "more than the 49.5% allowed" in close.paragraph


def test_the_regression_rule_passes_the_same_speed_and_fails_twice_as_slow() -> None:
    baseline = repeated(2, 0.010, 0.0101, 0.0102)
    same = repeated(2, 0.0101, 0.0100, 0.0102)
    slower = repeated(2, 0.020, 0.0202, 0.0201)
    (ok,) = gate(same, baseline, max_wait=None)
    (bad,) = gate(slower, baseline, max_wait=None)
    assert ok.name == bad.name == REGRESSION
    assert ok.passed and not bad.passed
    assert bad.paragraph.startswith("Slower than the baseline: an epoch at w=2 takes 403 ms")
    assert "against the baseline's 208 ms at w=2" in bad.paragraph
    assert "1.94x as long" in bad.paragraph and "the gate allows 10% more" in bad.paragraph
    assert "Input-bound" in bad.paragraph
    assert bad.figures["ratio"] == pytest.approx(1.94, abs=0.01)


def test_noise_on_both_sides_widens_what_the_regression_rule_allows() -> None:
    quiet_base = repeated(0, 0.010, 0.010, 0.010)
    quiet_slower = repeated(0, 0.0115, 0.0115, 0.0115)  # 15% slower, no spread
    noisy_base = repeated(0, 0.008, 0.009, 0.010, 0.011, 0.012)  # quartiles ~20% apart
    noisy_slower = repeated(0, 0.0092, 0.0104, 0.0115, 0.0127, 0.0138)  # 15% slower, as noisy
    (quiet,) = gate(quiet_slower, quiet_base, max_wait=None, tolerance=0.10)
    (noisy,) = gate(noisy_slower, noisy_base, max_wait=None, tolerance=0.10)
    assert not quiet.passed and quiet.figures["allowed"] == pytest.approx(0.10)
    assert noisy.passed and noisy.figures["allowed"] == pytest.approx(noisy.figures["noise"])
    assert noisy.figures["noise"] == pytest.approx(0.4, abs=0.03)
    (strict,) = gate(noisy_slower, noisy_base, max_wait=None, tolerance=0.5)
    assert strict.figures["allowed"] == 0.5


def test_one_cold_run_does_not_make_the_noise_that_hides_a_regression() -> None:
    baseline = repeated(0, 0.050, 0.010, 0.010, 0.010, 0.0101)  # a cold first run
    (check,) = gate(repeated(0, 0.020, 0.020, 0.0201), baseline, max_wait=None)
    assert not check.passed and check.figures["noise"] < 0.02
    assert "1.95x as long" in check.paragraph


def test_a_wider_tolerance_passes_what_the_default_fails() -> None:
    baseline, slower = repeated(0, 0.010, 0.010), repeated(0, 0.013, 0.013)
    assert not gate(slower, baseline, max_wait=None)[0].passed
    assert gate(slower, baseline, max_wait=None, tolerance=0.5)[0].passed


def test_the_baseline_is_compared_at_the_same_config_where_it_measured_it() -> None:
    baseline = fakes.result(fakes.trial(0, 0.001), fakes.trial(2, 0.010), fakes.trial(4, 0.02))
    assert baseline.best is not None and baseline.best.config == LoaderConfig(0)
    (check,) = gate(repeated(2, 0.010), baseline, max_wait=None)
    assert check.passed and check.figures["baseline_config"] == "w=2"
    (other,) = gate(repeated(8, 0.010), baseline, max_wait=None)
    assert not other.passed and other.figures["baseline_config"] == "w=0"
    assert "The baseline did not measure w=8; its best is compared." in other.paragraph


def test_both_rules_together_and_a_failed_run() -> None:
    measured = repeated(0, 0.010, 0.010)
    measured.trials.append(fakes.failed(0))
    checks = gate(measured, repeated(0, 0.010), max_wait=0.6)
    assert [c.name for c in checks] == [RUNS, WAIT, REGRESSION]
    assert [c.passed for c in checks] == [False, True, True]
    assert (
        checks[0].paragraph
        == "1 of 3 runs of w=0 failed: ValueError: bad row 3 (index 3, batch 0)."
    )
    (only,) = gate(fakes.result(fakes.failed(0)), repeated(0, 0.01), max_wait=0.2)
    assert only.name == RUNS and not only.passed


def test_a_baseline_from_another_machine_is_compared_with_the_differences_named() -> None:
    baseline = repeated(0, 0.010, 0.010)
    baseline.machine = {"cpus": {"usable": 8, "logical": 16}, "torch_version": "2.12.0"}
    measured = repeated(0, 0.010, 0.010)
    measured.machine = {"cpus": {"usable": 2, "logical": 16}, "torch_version": "2.13.0"}
    (warning,) = baseline_warnings(measured, baseline)
    assert warning == (
        "the baseline was measured on another machine (usable CPUs: 8 there, 2 here; "
        "torch: 2.12.0 there, 2.13.0 here)"
    )
    (check,) = gate(measured, baseline, max_wait=None)
    assert check.passed and f"Note: {warning}." in check.paragraph


def test_a_baseline_written_by_an_older_loadertune_is_compared() -> None:
    baseline = Result.load(OLD)  # before the reshape; w=0, 32 a batch, about 3 ms an epoch
    base_epoch = baseline.summaries()[0].epoch_s
    assert base_epoch is not None
    # 20 batches of 8 here against 8 batches of 32 there: the workloads differ, and it says so
    (slower,) = gate(repeated(0, 0.010), baseline, max_wait=None)
    assert not slower.passed and slower.figures["baseline_config"] == "w=0"
    assert slower.figures["baseline_epoch_s"]["median"] == base_epoch.median
    assert "another machine (usable CPUs: 2 there, 2 here" not in slower.paragraph
    assert "torch: 2.13.0+cpu there, x here" in slower.paragraph
    assert (
        "the baseline measured another workload (batch size: 32 there, 8 here" in slower.paragraph
    )
    quick = fakes.result(fakes.trial(0, 0.00005, startup_s=0.0001))  # about 2 ms an epoch
    (faster,) = gate(quick, baseline, max_wait=None)
    assert faster.passed and faster.paragraph.startswith("Keeps up with the baseline")


def test_junit_has_one_test_case_per_check_and_a_failure_with_the_reason() -> None:
    checks = [Check(WAIT, True, "fine"), Check(REGRESSION, False, 'Slower: 2.0x "as long" & <so>')]
    text = junit_xml(checks, "data.py:train_set", ["the baseline was elsewhere"])
    root = ET.fromstring(text)  # noqa: S314 - the XML we just wrote
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    (suite,) = root
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("data.py:train_set", WAIT),
        ("data.py:train_set", REGRESSION),
    ]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and failure.text == 'Slower: 2.0x "as long" & <so>'
    assert failure.get("message") == failure.text
    assert suite.findtext("system-out") == "warning: the baseline was elsewhere"


def test_failures_become_github_error_annotations_escaped() -> None:
    checks = [Check(WAIT, True, "fine"), Check(REGRESSION, False, "allows 10%\nmore")]
    lines = workflow_commands(checks, ["other machine: 8 CPUs, 2 here"])
    assert lines == [
        "::warning title=loadertune check::other machine: 8 CPUs, 2 here",
        "::error title=loadertune check%3A epoch vs baseline::allows 10%25%0Amore",
    ]


def test_an_online_loaders_epochs_are_compared_with_the_later_epochs_of_the_job() -> None:
    from dataclasses import replace

    persist = LoaderConfig(2, persistent_workers=True)

    def job(startup_s: float, warm_s: float | None, online: bool) -> Result:
        trials = [
            replace(fakes.trial(2, 0.010, startup_s=startup_s, repeat=r), config=persist)
            for r in range(3)
        ]
        for t in trials:
            t.warm_startup_s = warm_s
        done = fakes.result(*trials, repeats=3)
        done.workload = {**done.workload, "epochs": 6}
        done.settings = {"online": True} if online else done.settings
        return done

    online = job(0.010, None, online=True)  # inside the job: the workers were running
    measured = job(1.0, 0.010, online=False)  # here: a cold start of 1 s, 10 ms warm
    (check,) = gate(measured, online, max_wait=None)
    assert check.passed and check.figures["ratio"] == pytest.approx(1.0, abs=0.01)
    assert "(a later epoch, its workers running already)" in check.paragraph
    assert "(epochs timed inside an online loader's job)" in check.paragraph
    offline = job(0.010, 0.010, online=False)  # the same baseline measured by bench
    (amortised,) = gate(measured, offline, max_wait=None)
    assert not amortised.passed  # the cold second counts, a sixth of it each epoch
    assert "(a 6-epoch job's share, its workers started once)" in amortised.paragraph
