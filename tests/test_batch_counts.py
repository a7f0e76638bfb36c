"""An epoch that delivers the wrong number of batches is flagged; a hung step is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iterables import Short, Unsplit, hanging_step
from loadertune import LoaderConfig, TrialLimits, Workload
from loadertune.engine.offline import run_trial
from sample_data import Rows

LIMITS = TrialLimits(budget_s=30.0, timeout_s=20.0)


@pytest.mark.workers
def test_an_unsplit_iterable_dataset_is_flagged_with_workers() -> None:
    trial = run_trial(Workload(Unsplit(), batch_size=4), LoaderConfig(2), LIMITS)
    assert trial.ok and trial.batches == 16  # twice the 8 its length promises
    (warning,) = trial.warnings
    assert "16 batches where the loader's length says 8" in warning
    assert "get_worker_info()" in warning


def test_an_iterable_dataset_that_matches_its_length_is_not_flagged() -> None:
    trial = run_trial(Workload(Unsplit(), batch_size=4), LoaderConfig(0), LIMITS)
    assert trial.ok and trial.batches == 8 and trial.warnings == []
    assert trial.n_samples == [4] * 8  # read off the batches: an iterable has no sampler
    assert trial.samples_per_s is not None


def test_a_stream_that_ends_before_the_budget_is_flagged() -> None:
    trial = run_trial(Workload(Short(), batch_size=4, batch_budget=50), LoaderConfig(0), LIMITS)
    assert trial.ok and trial.batches == 3
    assert any(
        "ended after 3 batches, before the --batches budget of 50" in w for w in trial.warnings
    )


def test_a_step_that_hangs_is_named_not_the_data() -> None:
    limits = TrialLimits(budget_s=30.0, timeout_s=1.0)
    trial = run_trial(Workload(Rows(16), step=hanging_step, batch_size=4), LoaderConfig(0), limits)
    assert trial.error is not None and trial.error.kind == "timeout"
    assert "the step did not return" in str(trial.error)


KILLED_WORKERS = """
from sample_data import HangsAt
from loadertune import LoaderConfig, TrialLimits, Workload
from loadertune.engine.offline import run_trial

trial = run_trial(
    Workload(HangsAt(bad=9, n=64), batch_size=1, shuffle=False),
    LoaderConfig(2),
    TrialLimits(budget_s=30.0, timeout_s=2.0),
)
assert trial.error is not None and trial.error.kind == "timeout", trial.error
"""


@pytest.mark.workers
def test_killed_workers_leave_no_temp_folder(tmp_path: Path) -> None:
    """Workers killed mid-batch (after passing tensors by file descriptor) never clean their
    multiprocessing temp folders; in a fresh process with its own TMPDIR, none may remain."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": _pythonpath()}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WORKERS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def _pythonpath() -> str:
    here = Path(__file__).parent
    return os.pathsep.join([str(here), str(here.parent / "src"), os.environ.get("PYTHONPATH", "")])
