"""Verdicts, the explanation and the advice, on synthetic trials with known timings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes import MACHINE, WORKLOAD, classic_like, timed
from loadertune import Result, Trial
from loadertune.analysis.advice import findings
from loadertune.analysis.document import document
from loadertune.analysis.explanation import result_verdict
from loadertune.analysis.verdict import config_bottleneck, startup_share, trial_bottleneck
from loadertune.records import stats


def verdict_of(trial: Trial, epochs: int = 1) -> tuple[str, str | None]:
    verdict = trial_bottleneck(trial, epochs)
    assert verdict is not None
    return verdict.kind, verdict.degree


def test_waiting_half_the_time_is_highly_input_bound() -> None:
    assert verdict_of(timed(0, wait_s=0.001, step_s=0.001)) == ("input", "highly")


def test_waiting_a_tenth_of_the_time_is_moderately_input_bound() -> None:
    assert verdict_of(timed(2, wait_s=0.0001, step_s=0.001)) == ("input", "moderately")


def test_a_step_that_never_waits_is_compute_bound() -> None:
    assert verdict_of(timed(16, wait_s=0.00001, step_s=0.001)) == ("compute", None)


def test_workers_slower_to_start_than_the_epoch_is_startup_bound() -> None:
    assert verdict_of(timed(4, wait_s=0.001, step_s=0.001, startup_s=0.2))[0] == "startup"


def test_waiting_for_batches_already_made_is_transfer_bound() -> None:
    trial = timed(2, wait_s=0.002, step_s=0.001, made_before_s=0.005)
    assert verdict_of(trial) == ("transfer", "highly")
    assert stats.transit_share(trial.times) == pytest.approx(1.0)


def test_batches_made_as_they_arrive_are_input_not_transfer() -> None:
    trial = timed(2, wait_s=0.002, step_s=0.001)
    assert stats.transit_share(trial.times) == pytest.approx(0.0)
    assert verdict_of(trial) == ("input", "highly")


def test_no_workers_is_never_transfer_or_startup_bound() -> None:
    trial = timed(0, wait_s=0.002, step_s=0.001, startup_s=0.5, made_before_s=0.005)
    assert verdict_of(trial) == ("input", "highly")
    verdict = trial_bottleneck(trial)
    assert verdict is not None and verdict.transit_share is None


def test_persistent_workers_pay_startup_once_over_the_planned_epochs() -> None:
    trial = timed(4, wait_s=0.001, step_s=0.001, startup_s=0.1, persistent=True, warm_s=0.002)
    one, ten = startup_share(trial, 1), startup_share(trial, 10)
    assert one is not None and ten is not None and ten < one / 3
    assert verdict_of(trial, 1)[0] == "startup"
    assert verdict_of(trial, 10)[0] != "startup"


def test_a_config_verdict_takes_the_median_of_its_repeats() -> None:
    waits = (0.00001, 0.001, 0.001)  # one compute-bound outlier among input-bound repeats
    trials = [timed(2, wait_s=w, step_s=0.001, repeat=r) for r, w in enumerate(waits)]
    verdict = config_bottleneck(trials)
    assert verdict is not None and verdict.kind == "input"


def test_failed_trials_have_no_verdict() -> None:
    trial = timed(2, 0.001, 0.001)
    trial.status = "failed"
    assert trial_bottleneck(trial) is None


@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(-1, 1)), min_size=2, max_size=30)
)
def test_transit_share_is_a_share(rows: list[tuple[float, float, float]]) -> None:
    request, ready, done, t = [], [], [], 0.0
    for wait, step, made in rows:
        request.append(t)
        ready.append(t + wait)
        done.append(t + wait * made)
        t += wait + step
    times = stats.BatchTimes(request, ready, ready, done, [1] * len(rows))
    share = stats.transit_share(times)
    assert share is None or 0.0 <= share <= 1.0 + 1e-9


def test_the_verdict_explains_why_more_workers_lose() -> None:
    verdict = result_verdict(classic_like())
    assert verdict is not None
    assert verdict["kind"] == "input" and verdict["config"] == "w=0"
    sentence = verdict["sentence"]
    assert "waits for data 50%" in sentence and "main process" in sentence
    assert "More workers do not help: w=2" in sentence and "transfer-bound" in sentence
    assert "transfer-bound (highly): it waits for data 80% of the time" in sentence
    assert "100% of that for batches already made" in sentence


def test_headroom_compares_the_pick_with_the_step_alone() -> None:
    pick_rate = classic_like().summaries()[0].figure("samples_per_s")
    assert pick_rate is not None
    diagnosis = {"step_alone": {"samples_per_s": pick_rate.median * 2}}
    verdict = result_verdict(classic_like(diagnosis))
    assert verdict is not None and verdict["headroom"]["pick_share"] == pytest.approx(0.5)
    assert "w=0 reaches 50%" in verdict["sentence"]  # a bench made no pick: named by label
    tuned = classic_like(diagnosis)
    tuned.tuning = {"pick": None}
    tuned.pick = tuned.summaries()[0].config
    assert "the pick reaches 50%" in (result_verdict(tuned) or {})["sentence"]


def test_verdicts_travel_in_the_json_and_come_back() -> None:
    result = classic_like({"step_alone": {"samples_per_s": 1e5}})
    doc = json.loads(json.dumps(document(result), allow_nan=False))
    assert doc["verdict"]["kind"] == "input"
    assert doc["summary"][1]["bottleneck"]["kind"] == "transfer"
    assert {t["bottleneck"]["kind"] for t in doc["trials"]} == {"input", "transfer"}
    again = Result.from_dict(doc)
    # what the document held comes back as the record's verdict and advice
    assert again.verdict == result_verdict(result) and again.advice == findings(result)
    assert again.verdict is not None


def test_batched_fetch_is_advised_with_its_measurement_when_loading_matters() -> None:
    probe = {"per_sample_s": 0.0006, "batched_s": 0.0002, "speedup": 3.0}
    advice = findings(classic_like({"batched_fetch": probe}))
    assert [f["code"] for f in advice] == ["batched_fetch"]
    assert "3x faster" in advice[0]["finding"] and "BatchSampler" in advice[0]["fix"]
    assert advice[0]["evidence"] == probe


def test_no_batched_fetch_advice_when_the_gain_is_small() -> None:
    probe = {"per_sample_s": 0.0003, "batched_s": 0.0002, "speedup": 1.2}
    assert findings(classic_like({"batched_fetch": probe})) == []


def test_uint8_is_advised_when_floats_are_whole_bytes_and_workers_are_transfer_bound() -> None:
    batch = {"bytes": 2**21, "float_bytes": 2**21, "float_dtypes": ["float32"]}
    advice = findings(classic_like({"batch": {**batch, "uint8_lossless": True}}))
    assert [f["code"] for f in advice] == ["compact_dtype"]
    assert "2 MiB of float32" in advice[0]["finding"] and "uint8" in advice[0]["fix"]
    assert "w=2 is transfer-bound" in advice[0]["finding"]
    assert findings(classic_like({"batch": {**batch, "uint8_lossless": False}})) == []


def test_the_step_is_named_the_limit_when_the_pick_nears_the_step_alone() -> None:
    rate = classic_like().summaries()[0].figure("samples_per_s")
    assert rate is not None
    advice = findings(classic_like({"step_alone": {"samples_per_s": rate.median * 1.05}}))
    assert [f["code"] for f in advice] == ["step_bound"]


def test_more_workers_are_advised_when_the_most_tried_still_wait_on_idle_cpus() -> None:
    trials = [timed(0, 0.01, 0.001), timed(4, 0.004, 0.001)]
    for trial in trials:  # CPUs mostly idle: a tenth of a core busy
        trial.cpu = [(0.0, 0.0), (trial.end_s or 1.0, 0.1 * (trial.end_s or 1.0))]
    advice = findings(Result(machine=MACHINE, workload=WORKLOAD, trials=trials))
    assert [f["code"] for f in advice] == ["more_workers"]
    assert "only 0.1 of 2 CPUs are busy" in advice[0]["finding"]


def test_persistent_workers_are_advised_for_a_multi_epoch_run_that_never_tried_them() -> None:
    trials = [timed(0, 0.02, 0.001), timed(2, 0.002, 0.001, startup_s=0.01)]
    workload = {**WORKLOAD, "epochs": 10}
    advice = findings(Result(machine=MACHINE, workload=workload, trials=trials))
    assert "persistent_workers" in [f["code"] for f in advice]


def test_a_pick_as_fast_as_the_step_alone_is_said_to_run_at_its_speed() -> None:
    rate = classic_like().summaries()[0].figure("samples_per_s")
    assert rate is not None
    verdict = result_verdict(classic_like({"step_alone": {"samples_per_s": rate.median * 0.9}}))
    assert verdict is not None  # the step alone measured slower than the pick: machine drift
    assert "runs at about the speed of the step alone" in verdict["sentence"]
    assert "reaches" not in verdict["sentence"]


def test_without_a_step_the_verdict_speaks_of_the_loader_alone() -> None:
    result = classic_like()
    result.workload = {**result.workload, "step": None}
    verdict = result_verdict(result)
    assert verdict is not None and verdict["sentence"].startswith("No training step was given")
    assert "at w=0 the loader delivers" in verdict["sentence"]


def test_more_workers_are_not_advised_when_none_were_tried() -> None:
    trial = timed(0, 0.01, 0.001)
    trial.cpu = [(0.0, 0.0), (trial.end_s or 1.0, 0.0)]  # a tick-quantised reading of nothing
    assert findings(Result(machine=MACHINE, workload=WORKLOAD, trials=[trial])) == []
